package names

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
)

// resolvectl configures systemd-resolved for the TUN link: the node's DNS
// server for the CLADNet's domains, and never for anything else.
type resolvectl struct {
	link string
	// run runs resolvectl with args (a fake in tests).
	run func(ctx context.Context, args ...string) error
}

func newResolvectl(link string) *resolvectl {
	return &resolvectl{link: link, run: runResolvectl}
}

// resolvectlPresent reports whether resolvectl is installed.
func resolvectlPresent() bool {
	_, err := exec.LookPath("resolvectl")
	return err == nil
}

func runResolvectl(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "resolvectl", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("resolvectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// domains are the link's domains: the CLADNet's zone as a search domain (so
// a bare "vm2" is tried as vm2.<cladnet>.cbnode) and ~cbnode routing the
// rest of cbnode. to the link.
func domains(zone string) []string {
	if zone == "" {
		return []string{"~" + TopZone}
	}
	return []string{zone, "~" + TopZone}
}

// apply points the link's DNS at server for the CLADNet's domains and keeps
// the link from becoming a default route for other names.
func (r *resolvectl) apply(ctx context.Context, server netip.AddrPort, zone string) error {
	addr := server.Addr().String()
	if server.Port() != 53 {
		addr = server.String()
	}
	if err := r.run(ctx, "dns", r.link, addr); err != nil {
		return err
	}
	if err := r.run(ctx, append([]string{"domain", r.link}, domains(zone)...)...); err != nil {
		return err
	}
	// A link with a ~ domain is no default route anyway; say so
	// where resolvectl knows the verb (systemd ≥ 240).
	_ = r.run(ctx, "default-route", r.link, "false")
	return nil
}

// revert drops everything set on the link.
func (r *resolvectl) revert(ctx context.Context) error {
	return r.run(ctx, "revert", r.link)
}
