package names

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/cloud-barista/cbnode/internal/atomicfile"
)

// DefaultHostsFile is the hosts file a node manages its block in.
const DefaultHostsFile = "/etc/hosts"

// Markers of a CLADNet's block in the hosts file.
func beginMarker(cladnet string) string { return "# cbnode " + cladnet + " begin" }
func endMarker(cladnet string) string   { return "# cbnode " + cladnet + " end" }

// RewriteHosts returns the hosts file old with the block of CLADNet cladnet
// replaced by one line per entry ("<ip> <host>.<zone> <host>.cbnode <host>"),
// appended at the end; with no entries the block is removed. Every other
// line is kept as it was. A bare host name that another line of the file
// already names (the machine's own name on 127.0.1.1, localhost, another
// CLADNet's block) is left out, so the block never shadows or overrides it.
// Rewriting with the same entries gives the same bytes.
func RewriteHosts(old []byte, cladnet, zone string, entries []Entry) []byte {
	begin, end := beginMarker(cladnet), endMarker(cladnet)
	lines := strings.SplitAfter(string(old), "\n")
	if n := len(lines); n > 0 && lines[n-1] == "" {
		lines = lines[:n-1]
	}
	var kept []string
	taken := map[string]bool{"localhost": true}
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if l == begin {
			j := i + 1
			for j < len(lines) && strings.TrimSpace(lines[j]) != end {
				j++
			}
			if j == len(lines) {
				// No end marker (a cut-off write): drop only the lines that
				// are ours.
				for j = i + 1; j < len(lines) && isManagedLine(lines[j]); j++ {
				}
				j--
			}
			i = j
			continue
		}
		kept = append(kept, lines[i])
		for _, name := range hostNames(l) {
			taken[strings.ToLower(name)] = true
		}
	}
	var b bytes.Buffer
	for _, l := range kept {
		b.WriteString(l)
	}
	if len(entries) == 0 {
		return b.Bytes()
	}
	if b.Len() > 0 && !bytes.HasSuffix(b.Bytes(), []byte("\n")) {
		b.WriteByte('\n')
	}
	b.WriteString(begin + "\n")
	for _, e := range entries {
		names := []string{}
		if zone != "" {
			names = append(names, e.Host+"."+zone)
		}
		if n := e.Host + "." + TopZone; !taken[n] {
			names = append(names, n)
		}
		if !taken[e.Host] {
			names = append(names, e.Host)
		}
		fmt.Fprintf(&b, "%s\t%s\n", e.IP, strings.Join(names, " "))
	}
	b.WriteString(end + "\n")
	return b.Bytes()
}

// hostNames returns the names a hosts-file line gives (none for comments).
func hostNames(line string) []string {
	if i := strings.IndexByte(line, '#'); i >= 0 {
		line = line[:i]
	}
	f := strings.Fields(line)
	if len(f) < 2 {
		return nil
	}
	return f[1:]
}

// isManagedLine reports whether a hosts-file line looks like one of a block's
// entries: an address and names under cbnode.
func isManagedLine(line string) bool {
	names := hostNames(line)
	if len(names) == 0 {
		return false
	}
	return strings.HasSuffix(strings.ToLower(names[0]), "."+TopZone)
}

// WriteHostsFile rewrites the CLADNet's block in the hosts file at path
// (RewriteHosts); it reports whether the file changed. The new file is
// written beside the old one and renamed over it, so readers see the old or
// the new file, never a part; a hosts file that is a mount point (containers,
// "ip netns exec") cannot be renamed over and is rewritten in place.
func WriteHostsFile(path, cladnet, zone string, entries []Entry) (changed bool, err error) {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("hosts file %s: %w", path, err)
	}
	if len(entries) == 0 && errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	data := RewriteHosts(old, cladnet, zone, entries)
	if bytes.Equal(data, old) && err == nil {
		return false, nil
	}
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	if err := replaceFile(path, data, mode); err != nil {
		return false, fmt.Errorf("hosts file %s: %w", path, err)
	}
	return true, nil
}

// replaceFile writes path through a temporary file renamed over it. Where
// that cannot work — the file is a mount point (EBUSY, EXDEV) or only the
// file, not its directory, is writable — it rewrites the file in place.
func replaceFile(path string, data []byte, mode os.FileMode) error {
	err := atomicfile.Write(path, data, mode)
	if errors.Is(err, syscall.EBUSY) || errors.Is(err, syscall.EXDEV) || errors.Is(err, os.ErrPermission) {
		return writeInPlace(path, data, mode)
	}
	return err
}

// writeInPlace rewrites path's contents without replacing the file.
func writeInPlace(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Truncate(int64(len(data))); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
