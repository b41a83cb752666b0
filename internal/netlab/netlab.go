//go:build linux

// Package netlab builds small network-namespace labs for end-to-end tests,
// demos and benchmarks: hosts (network namespaces), switches (a Linux bridge
// inside a namespace of its own), veth links between them and NAT routers.
//
// Nothing is created in, or changed in, the namespace the calling process
// runs in — but for the kernel's neighbour-table limits, which only exist
// there and which large labs raise while they live (neigh.go): every
// switch lives in a dedicated namespace, every veth pair is
// created between two lab namespaces, and commands run with
// "ip netns exec". Labs have no route out of the machine.
//
// Naming: New("cbt") picks a lab id such as "cbt3f2a"; a host named "a" lives
// in the namespace "cbt3f2a-a". Inside a host, the interface attached to
// switch "lan" is named "lan"; inside a switch namespace, the bridge is "br0"
// and the port towards host "a" is named "a". Host and switch names are
// therefore limited to valid interface names (at most 15 characters).
//
// A host may have its own hosts file (Host.HostsFile): /etc/netns/<ns>/hosts,
// which "ip netns exec" mounts over /etc/hosts for the commands it runs, so
// a test can have a process manage its hosts file without touching the
// machine's. Deleting the namespace deletes /etc/netns/<ns>.
//
// Every lab records its owner process in /run/netlab/<id>.owner, so that
// CleanupStale (called by New as well) can remove namespaces of crashed runs
// without touching labs of runs still alive.
//
// The package needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and the iproute2
// "ip" command; Router additionally needs iptables.
package netlab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

const (
	// maxPrefixLen keeps lab ids (prefix + 4 hex digits) short.
	maxPrefixLen = 8
	// suffixLen is the number of random hex digits appended to the prefix.
	suffixLen = 4
	// maxNameLen is IFNAMSIZ-1: host and switch names double as interface names.
	maxNameLen = 15
	// bridgeName is the bridge device inside every switch namespace.
	bridgeName = "br0"
	// stopTimeout is how long Close and Proc.Stop wait after SIGTERM before SIGKILL.
	stopTimeout = 3 * time.Second
	// cmdTimeout bounds the ip/iptables commands the lab runs for itself.
	cmdTimeout = 30 * time.Second
)

const (
	// ownerDir holds one file per live lab naming its owner process.
	ownerDir = "/run/netlab"
	// netnsDir is where iproute2 (and package netns) keep named namespaces.
	netnsDir = "/run/netns"
	// etcNetnsDir holds per-namespace files "ip netns exec" mounts over
	// /etc (hosts, resolv.conf).
	etcNetnsDir = "/etc/netns"
)

// Lab is a set of network namespaces (hosts, switches, routers) and the
// processes started in them. All methods are safe for concurrent use.
type Lab struct {
	id        string
	ownerFile string

	mu     sync.RWMutex // guards the fields below; RLock keeps node handles open
	closed bool
	nodes  map[string]*node // by lab-level name (host or switch)
	order  []*node          // creation order, deleted in reverse
	procs  map[*Proc]struct{}
}

// node is one network namespace of the lab.
type node struct {
	lab  *Lab
	name string // lab-level name
	ns   string // namespace name, lab.id + "-" + name
	h    netns.NsHandle
	nl   *netlink.Handle
}

// New creates an empty lab. prefix (1-8 lowercase letters or digits,
// starting with a letter) is completed with a random suffix so that
// parallel runs do not collide. New first removes stale namespaces left
// with the same prefix by crashed runs (see CleanupStale).
func New(prefix string) (*Lab, error) {
	if err := validPrefix(prefix); err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("netlab: iproute2 'ip' command not found: %w", err)
	}
	// Best effort: a stale lab does not prevent a new one.
	_ = CleanupStale(prefix)

	if err := os.MkdirAll(ownerDir, 0o755); err != nil {
		return nil, fmt.Errorf("netlab: %w", err)
	}
	for range 16 {
		var b [suffixLen / 2]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("netlab: random suffix: %w", err)
		}
		id := prefix + hex.EncodeToString(b[:])
		if labNamespacesExist(id) {
			continue
		}
		file := filepath.Join(ownerDir, id+".owner")
		created, err := createOwnerFile(file)
		if err != nil {
			return nil, fmt.Errorf("netlab: owner file: %w", err)
		}
		if !created {
			continue
		}
		return &Lab{
			id:        id,
			ownerFile: file,
			nodes:     map[string]*node{},
			procs:     map[*Proc]struct{}{},
		}, nil
	}
	return nil, fmt.Errorf("netlab: no free lab id for prefix %q", prefix)
}

// createOwnerFile atomically creates file naming this process as owner. It
// returns false if the file exists already. The content is written to a
// temporary file first and hard-linked into place, so that CleanupStale
// never sees an empty owner file (which would make the lab look dead).
func createOwnerFile(file string) (bool, error) {
	tmp, err := os.CreateTemp(filepath.Dir(file), ".tmp-owner-")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name())
	_, werr := fmt.Fprintf(tmp, "%d %d\n", os.Getpid(), procStartTime(os.Getpid()))
	if err := errors.Join(werr, tmp.Close()); err != nil {
		return false, err
	}
	if err := os.Link(tmp.Name(), file); err != nil {
		if errors.Is(err, os.ErrExist) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// ID returns the lab id (prefix plus random suffix), the common prefix of
// all its namespace names.
func (l *Lab) ID() string { return l.id }

// Namespaces returns the names of the namespaces the lab currently owns.
func (l *Lab) Namespaces() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, 0, len(l.order))
	for _, n := range l.order {
		out = append(out, n.ns)
	}
	return out
}

// newNodeLocked creates the namespace for name. The caller holds l.mu.
func (l *Lab) newNodeLocked(name string) (*node, error) {
	if l.closed {
		return nil, errors.New("netlab: lab is closed")
	}
	if err := validName(name); err != nil {
		return nil, err
	}
	if _, dup := l.nodes[name]; dup {
		return nil, fmt.Errorf("netlab: name %q already used in lab %s", name, l.id)
	}
	n := &node{lab: l, name: name, ns: l.id + "-" + name, h: netns.None()}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", "netns", "add", n.ns).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("netns %s: ip netns add: %w: %s", n.ns, err, strings.TrimSpace(string(out)))
	}
	// Registered before the remaining setup so that Close deletes it on failure.
	l.nodes[name] = n
	l.order = append(l.order, n)

	h, err := netns.GetFromName(n.ns)
	if err != nil {
		return nil, fmt.Errorf("netns %s: open: %w", n.ns, err)
	}
	n.h = h
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		return nil, fmt.Errorf("netns %s: netlink handle: %w", n.ns, err)
	}
	if err := nl.SetSocketTimeout(cmdTimeout); err != nil {
		nl.Close()
		return nil, fmt.Errorf("netns %s: netlink timeout: %w", n.ns, err)
	}
	n.nl = nl
	lo, err := nl.LinkByName("lo")
	if err == nil {
		err = nl.LinkSetUp(lo)
	}
	if err != nil {
		return nil, fmt.Errorf("netns %s: lo up: %w", n.ns, err)
	}
	return n, nil
}

// Close stops all processes started in the lab (SIGTERM, then SIGKILL after
// 3 s), kills whatever else still runs in its namespaces and deletes the
// namespaces, which removes their veths and bridges. Close is idempotent;
// objects of a closed lab return errors.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	procs := make([]*Proc, 0, len(l.procs))
	for p := range l.procs {
		procs = append(procs, p)
	}
	nodes := l.order
	l.order = nil
	l.nodes = map[string]*node{}
	l.mu.Unlock()

	var errs []error
	var wg sync.WaitGroup
	var emu sync.Mutex
	for _, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.terminate(stopTimeout); err != nil {
				emu.Lock()
				errs = append(errs, err)
				emu.Unlock()
			}
		}()
	}
	wg.Wait()

	for i := len(nodes) - 1; i >= 0; i-- {
		n := nodes[i]
		if n.nl != nil {
			n.nl.Close()
		}
		if n.h.IsOpen() {
			n.h.Close()
		}
		if err := deleteNamespace(n.ns); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(l.ownerFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("netlab: %w", err))
	}
	if err := restoreNeighbours(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// deleteNamespace kills stray processes left in the namespace and deletes it.
func deleteNamespace(ns string) error {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	killNamespacePIDs(ctx, ns)
	if err := os.RemoveAll(filepath.Join(etcNetnsDir, ns)); err != nil {
		return fmt.Errorf("netns %s: %w", ns, err)
	}
	out, err := exec.CommandContext(ctx, "ip", "netns", "del", ns).CombinedOutput()
	if err != nil {
		if _, serr := os.Stat(filepath.Join(netnsDir, ns)); errors.Is(serr, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("netns %s: ip netns del: %w: %s", ns, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// killNamespacePIDs SIGKILLs the processes still running in the (lab-owned)
// namespace ns, e.g. grandchildren that escaped their process group, so the
// namespace really goes away when its name is deleted. The calling process
// itself is never signalled.
func killNamespacePIDs(ctx context.Context, ns string) {
	out, err := exec.CommandContext(ctx, "ip", "netns", "pids", ns).Output()
	if err != nil {
		return
	}
	self := os.Getpid()
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 1 || pid == self {
			continue
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// CleanupStale deletes namespaces named prefix+<4 hex digits>+"-..." whose
// lab owner process is gone (crashed or killed test runs), killing what
// still runs inside them. Labs of live processes are left alone.
func CleanupStale(prefix string) error {
	if err := validPrefix(prefix); err != nil {
		return err
	}
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		entries = nil
	} else if err != nil {
		return fmt.Errorf("netlab: %w", err)
	}
	alive := map[string]bool{}
	var errs []error
	for _, e := range entries {
		id, ok := labIDOf(e.Name(), prefix)
		if !ok {
			continue
		}
		live, seen := alive[id]
		if !seen {
			live = ownerAlive(id)
			alive[id] = live
		}
		if live {
			continue
		}
		if err := deleteNamespace(e.Name()); err != nil {
			errs = append(errs, err)
		}
	}
	// Owner files of dead labs without namespaces left.
	files, _ := filepath.Glob(filepath.Join(ownerDir, prefix+"*.owner"))
	for _, f := range files {
		id := strings.TrimSuffix(filepath.Base(f), ".owner")
		if _, ok := labIDOf(id+"-x", prefix); !ok {
			continue
		}
		if live, seen := alive[id]; (seen && !live) || (!seen && !ownerAlive(id)) {
			os.Remove(f)
		}
	}
	return errors.Join(errs...)
}

// labIDOf returns the lab id of namespace ns if it was named by a lab
// created with prefix.
func labIDOf(ns, prefix string) (string, bool) {
	n := len(prefix) + suffixLen
	if !strings.HasPrefix(ns, prefix) || len(ns) < n+2 || ns[n] != '-' {
		return "", false
	}
	for _, c := range ns[len(prefix):n] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", false
		}
	}
	return ns[:n], true
}

// ownerAlive reports whether the process that created lab id still runs.
func ownerAlive(id string) bool {
	b, err := os.ReadFile(filepath.Join(ownerDir, id+".owner"))
	if err != nil {
		return false
	}
	var pid int
	var start uint64
	if _, err := fmt.Sscan(string(b), &pid, &start); err != nil || pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	// Guard against PID reuse.
	return start == 0 || procStartTime(pid) == start
}

// procStartTime returns the start time of pid in clock ticks since boot
// (field 22 of /proc/<pid>/stat), or 0 if unknown.
func procStartTime(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); field 22 is f[19].
	if len(f) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}

func labNamespacesExist(id string) bool {
	m, _ := filepath.Glob(filepath.Join(netnsDir, id+"-*"))
	return len(m) > 0
}

func validPrefix(p string) error {
	if p == "" || len(p) > maxPrefixLen {
		return fmt.Errorf("netlab: prefix %q must have 1 to %d characters", p, maxPrefixLen)
	}
	for i, c := range p {
		ok := c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9'
		if !ok {
			return fmt.Errorf("netlab: prefix %q: only lowercase letters and digits, starting with a letter", p)
		}
	}
	return nil
}

// validName checks a host or switch name, which is also used as an
// interface name.
func validName(name string) error {
	if name == "" || len(name) > maxNameLen {
		return fmt.Errorf("netlab: name %q must have 1 to %d characters", name, maxNameLen)
	}
	for _, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
		if !ok {
			return fmt.Errorf("netlab: name %q: only letters, digits, '-' and '_'", name)
		}
	}
	if name == "lo" || name == bridgeName {
		return fmt.Errorf("netlab: name %q is reserved", name)
	}
	return nil
}
