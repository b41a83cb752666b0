package tumblebug

import (
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strings"
)

// Cloud facts: what a Tumblebug node says about itself, checked and turned
// into cbnode's names. Everything that reaches a node's shell or its env
// file passes safeValue first: Tumblebug data never becomes shell code.

// Facts are one node's cloud facts (cbnode join's --provider ... flags).
type Facts struct {
	Provider, Region, Zone string
	VPC, Subnet            string
	PrivateIP, PublicIP    string
}

// safe is what an ID, a name or an address from Tumblebug may hold.
var safe = regexp.MustCompile(`^[A-Za-z0-9._:/@+-]*$`)

func safeValue(what, v string) error {
	if !safe.MatchString(v) {
		return fmt.Errorf("%s %q holds characters cbnode does not put in a shell command or env file (allowed: letters, digits and ._:/@+-)", what, v)
	}
	return nil
}

// FactsOf reads node's cloud facts: the provider in lower case (as the
// cost rules compare it), the cloud's own VPC and subnet IDs (Tumblebug's
// IDs when the cloud's are missing).
func FactsOf(n Node) (Facts, error) {
	f := Facts{
		Provider: strings.ToLower(n.ConnectionConfig.ProviderName), Region: n.Region.Region, Zone: n.Region.Zone,
		VPC: firstOf(n.CspVNetID, n.VNetID), Subnet: firstOf(n.CspSubnetID, n.SubnetID),
		PrivateIP: n.PrivateIP, PublicIP: n.PublicIP,
	}
	for _, kv := range [][2]string{{"providerName", f.Provider}, {"region", f.Region}, {"zone", f.Zone},
		{"cspVNetId", f.VPC}, {"cspSubnetId", f.Subnet}} {
		if err := safeValue("node "+n.ID+": "+kv[0], kv[1]); err != nil {
			return f, err
		}
	}
	for _, kv := range [][2]string{{"privateIP", f.PrivateIP}, {"publicIP", f.PublicIP}} {
		if kv[1] == "" {
			continue
		}
		if _, err := netip.ParseAddr(kv[1]); err != nil {
			return f, fmt.Errorf("node %s: %s %q is not an IP address", n.ID, kv[0], kv[1])
		}
	}
	if f.PrivateIP == "" {
		return f, fmt.Errorf("node %s has no privateIP in Tumblebug (is it running? status %q)", n.ID, n.Status)
	}
	return f, nil
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// HostName turns a Tumblebug node ID into a cbnode host name (one DNS
// label, RFC 1123): lower case, other characters become '-', at most 63.
func HostName(nodeID string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(nodeID) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	s := strings.Trim(b.String(), "-")
	if len(s) > 63 {
		s = strings.TrimRight(s[:63], "-")
	}
	if s == "" {
		s = "node"
	}
	return s
}

// EnvFile is /etc/cbnode/env for one node: the CLADNet's name, the node's
// cloud facts, the bootstrap nodes, the listen port and any extra
// KEY=VALUE lines, in a fixed order (so an unchanged file hashes the same).
// It holds no secret.
func EnvFile(cladnet string, f Facts, bootstrap []string, port int, extra []string) (string, error) {
	var b strings.Builder
	b.WriteString("# Written by 'cbnode tumblebug deploy'; read by cbnode.service (EnvironmentFile=).\n")
	put := func(k, v string) error {
		if v == "" {
			return nil
		}
		if err := safeValue(k, v); err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s=%s\n", k, v)
		return nil
	}
	for _, kv := range [][2]string{
		{"CBNODE_CLADNET", cladnet}, {"CBNODE_PROVIDER", f.Provider}, {"CBNODE_REGION", f.Region}, {"CBNODE_ZONE", f.Zone},
		{"CBNODE_VPC", f.VPC}, {"CBNODE_SUBNET_ID", f.Subnet}, {"CBNODE_PRIVATE_IP", f.PrivateIP}, {"CBNODE_PUBLIC_IP", f.PublicIP},
		{"CBNODE_BOOTSTRAP", strings.Join(bootstrap, ",")}, {"CBNODE_PORT", fmt.Sprint(port)},
	} {
		if err := put(kv[0], kv[1]); err != nil {
			return "", err
		}
	}
	sorted := append([]string(nil), extra...)
	sort.Strings(sorted)
	for _, kv := range sorted {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, "CBNODE_") {
			return "", fmt.Errorf("--env %q: want CBNODE_NAME=VALUE", kv)
		}
		if err := put(k, v); err != nil {
			return "", err
		}
	}
	return b.String(), nil
}
