package cost

// CloudPatch is a partial update of a node's CloudInfo, as PUT
// .../peer/{hostId}/details receives it: a field absent from the JSON (nil)
// keeps its value, a field given replaces it, and an explicit empty value
// ("" or []) clears it. cb-network's clients send only the five location
// fields; the addresses given at join then stay.
type CloudPatch struct {
	ProviderName       *string   `json:"providerName,omitempty"`
	RegionID           *string   `json:"regionId,omitempty"`
	AvailabilityZoneID *string   `json:"availabilityZoneId,omitempty"`
	VirtualNetworkID   *string   `json:"virtualNetworkId,omitempty"`
	SubnetID           *string   `json:"subnetId,omitempty"`
	PrivateIPs         *[]string `json:"privateIps,omitempty"`
	PublicIP           *string   `json:"publicIp,omitempty"`
}

// Apply returns base with the patch's fields applied.
func (p CloudPatch) Apply(base CloudInfo) CloudInfo {
	out := base
	out.PrivateIPs = append([]string(nil), base.PrivateIPs...)
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&out.ProviderName, p.ProviderName)
	set(&out.RegionID, p.RegionID)
	set(&out.AvailabilityZoneID, p.AvailabilityZoneID)
	set(&out.VirtualNetworkID, p.VirtualNetworkID)
	set(&out.SubnetID, p.SubnetID)
	set(&out.PublicIP, p.PublicIP)
	if p.PrivateIPs != nil {
		out.PrivateIPs = append([]string(nil), (*p.PrivateIPs)...)
	}
	if len(out.PrivateIPs) == 0 {
		out.PrivateIPs = nil
	}
	out.Normalize()
	return out
}

// Empty reports whether the patch changes nothing.
func (p CloudPatch) Empty() bool { return p == CloudPatch{} }
