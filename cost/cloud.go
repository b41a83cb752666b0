// Package cost holds what cbnode knows about where a node runs (its cloud
// information) and, from the cost issue on, the price rules and metering.
package cost

import (
	"fmt"
	"net/netip"
	"strings"
)

// CloudInfo is a node's cloud placement. JSON names follow cb-network's
// CloudInformation (providerName, regionId, ...); privateIps and publicIp
// are cbnode's additions. Every field is optional: missing facts mean
// "assume the expensive path".
type CloudInfo struct {
	ProviderName       string   `json:"providerName,omitempty"`
	RegionID           string   `json:"regionId,omitempty"`
	AvailabilityZoneID string   `json:"availabilityZoneId,omitempty"`
	VirtualNetworkID   string   `json:"virtualNetworkId,omitempty"`
	SubnetID           string   `json:"subnetId,omitempty"`
	PrivateIPs         []string `json:"privateIps,omitempty"`
	PublicIP           string   `json:"publicIp,omitempty"`
}

// Normalize lower-cases the provider name and trims spaces.
func (c *CloudInfo) Normalize() {
	c.ProviderName = strings.ToLower(strings.TrimSpace(c.ProviderName))
	c.RegionID = strings.TrimSpace(c.RegionID)
	c.AvailabilityZoneID = strings.TrimSpace(c.AvailabilityZoneID)
	c.VirtualNetworkID = strings.TrimSpace(c.VirtualNetworkID)
	c.SubnetID = strings.TrimSpace(c.SubnetID)
	c.PublicIP = strings.TrimSpace(c.PublicIP)
}

// Validate checks the address fields.
func (c *CloudInfo) Validate() error {
	for _, s := range c.PrivateIPs {
		if _, err := netip.ParseAddr(s); err != nil {
			return fmt.Errorf("cloud info: private IP %q: %w", s, err)
		}
	}
	if c.PublicIP != "" {
		if _, err := netip.ParseAddr(c.PublicIP); err != nil {
			return fmt.Errorf("cloud info: public IP %q: %w", c.PublicIP, err)
		}
	}
	if len(c.PrivateIPs) > 16 {
		return fmt.Errorf("cloud info: %d private IPs, at most 16", len(c.PrivateIPs))
	}
	for _, f := range []string{c.ProviderName, c.RegionID, c.AvailabilityZoneID, c.VirtualNetworkID, c.SubnetID} {
		if len(f) > 256 {
			return fmt.Errorf("cloud info: field longer than 256 bytes")
		}
	}
	return nil
}
