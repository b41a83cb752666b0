//go:build linux

package netlab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The kernel's IPv4 neighbour (ARP) table is one table for all network
// namespaces, and its limits (net.ipv4.neigh.default.gc_thresh1/2/3,
// default 128/512/1024) exist in the initial namespace only. A lab of n
// hosts on one switch can need n² entries: at 50 hosts the table overflows
// ("neighbour: arp_cache: neighbor table overflow!" in the kernel log), and
// then sends to a new neighbour fail with ENOBUFS — connects time out,
// pings say "No buffer space available". So a lab raises the limits to
// room for 4 × nodes² entries while it lives — the one change it makes
// outside its own namespaces —, saving the values it found in
// /run/netlab/neigh.saved; the last lab to close (no owner file left)
// puts them back.

const neighSaved = "neigh.saved"

var neighKeys = [3]string{"gc_thresh1", "gc_thresh2", "gc_thresh3"}

func neighPath(key string) string { return "/proc/sys/net/ipv4/neigh/default/" + key }

func readNeigh() ([3]int, error) {
	var v [3]int
	for i, k := range neighKeys {
		b, err := os.ReadFile(neighPath(k))
		if err != nil {
			return v, err
		}
		if v[i], err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
			return v, fmt.Errorf("%s: %w", k, err)
		}
	}
	return v, nil
}

func writeNeigh(v [3]int) error {
	// Raise thresh3 first and lower it last: the kernel wants 1 ≤ 2 ≤ 3.
	order := []int{2, 1, 0}
	if cur, err := readNeigh(); err == nil && v[2] < cur[2] {
		order = []int{0, 1, 2}
	}
	var errs []error
	for _, i := range order {
		if err := os.WriteFile(neighPath(neighKeys[i]), []byte(strconv.Itoa(v[i])), 0o644); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// roomForNeighbours raises the neighbour table's limits, if needed, for a
// lab of nodes namespaces. Best effort: a lab works without it, only large
// ones lose neighbours.
func roomForNeighbours(nodes int) error {
	need := 4 * nodes * nodes
	cur, err := readNeigh()
	if err != nil || need <= cur[2] {
		return err
	}
	saved := filepath.Join(ownerDir, neighSaved)
	f, err := os.OpenFile(saved, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err == nil { // the first lab to raise them keeps the originals
		_, werr := fmt.Fprintf(f, "%d %d %d\n", cur[0], cur[1], cur[2])
		if err := errors.Join(werr, f.Close()); err != nil {
			return fmt.Errorf("netlab: %s: %w", saved, err)
		}
	} else if !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("netlab: %w", err)
	}
	return writeNeigh([3]int{max(cur[0], need/8), max(cur[1], need/2), need})
}

// restoreNeighbours puts the saved limits back once no lab is left.
func restoreNeighbours() error {
	saved := filepath.Join(ownerDir, neighSaved)
	b, err := os.ReadFile(saved)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	if owners, _ := filepath.Glob(filepath.Join(ownerDir, "*.owner")); len(owners) > 0 {
		return nil // another lab still runs
	}
	var v [3]int
	if _, err := fmt.Sscanf(string(b), "%d %d %d", &v[0], &v[1], &v[2]); err != nil {
		return fmt.Errorf("netlab: %s: %w", saved, err)
	}
	if err := writeNeigh(v); err != nil {
		return fmt.Errorf("netlab: restore the neighbour table limits: %w", err)
	}
	return os.Remove(saved)
}
