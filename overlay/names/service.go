package names

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/overlay"
)

// Modes: how the node makes its CLADNet's names resolvable on the machine.
const (
	ModeOff      = "off"      // no names
	ModeAuto     = "auto"     // systemd-resolved if it runs, else the hosts file
	ModeResolved = "resolved" // the DNS server, wired into systemd-resolved
	ModeHosts    = "hosts"    // the DNS server and the hosts-file block
	ModeServer   = "server"   // the DNS server only; the system resolver is left alone
)

// Modes lists the modes, for flag help and errors.
var Modes = []string{ModeAuto, ModeResolved, ModeHosts, ModeServer, ModeOff}

// ParseMode checks a mode's name ("" is off).
func ParseMode(s string) (string, error) {
	if s == "" {
		return ModeOff, nil
	}
	if slices.Contains(Modes, s) {
		return s, nil
	}
	return "", fmt.Errorf("unknown names mode %q: give one of %s", s, strings.Join(Modes, ", "))
}

// DefaultPort is the DNS server's port.
const DefaultPort = 53

// retryEvery paces retries of what failed (binding the server, writing the
// hosts file) while nothing else changes.
const retryEvery = 10 * time.Second

// Options configure a node's names. The zero value is off.
type Options struct {
	Mode      string // one of Modes ("" is off)
	HostsFile string // the hosts file of ModeHosts (and ModeAuto without systemd-resolved); default /etc/hosts
	// Addr, if valid, is where the DNS server listens instead of the node's
	// overlay address (tests); Port its port (default 53, 0 with Addr picks
	// one).
	Addr netip.Addr
	Port int
}

// Service keeps a node's names in step with the members table and the
// node's overlay address. Update and SetAddr only record and wake Run; Run
// does the work (binding, files, resolvectl) and undoes it when its context
// ends. A nil *Service does nothing.
type Service struct {
	opts Options
	spec *cladnet.Spec
	log  *slog.Logger
	res  *resolvectl
	// present reports whether systemd-resolved's resolvectl is installed.
	present func() bool

	kick  chan struct{}
	table atomic.Pointer[Table]

	mu      sync.Mutex
	members []overlay.Member
	ip      netip.Addr
	srv     *Server // read by ServerAddr; written by Run

	// Run's own state.
	mode      string // the mode in force (auto resolves to resolved or hosts)
	resolved  netip.AddrPort
	conflicts string
	lastErr   map[string]string
}

// New makes the names service of a node of spec's CLADNet whose TUN device
// is link. Start it with Run.
func New(opts Options, spec *cladnet.Spec, link string, log *slog.Logger) *Service {
	if opts.HostsFile == "" {
		opts.HostsFile = DefaultHostsFile
	}
	if opts.Port == 0 && !opts.Addr.IsValid() {
		opts.Port = DefaultPort
	}
	s := &Service{opts: opts, spec: spec, log: log, res: newResolvectl(link), present: resolvectlPresent,
		kick: make(chan struct{}, 1), lastErr: map[string]string{}}
	s.table.Store(Build(spec, nil, time.Now()))
	return s
}

// Update hands the service the current members table.
func (s *Service) Update(members []overlay.Member) {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.members = members
	s.mu.Unlock()
	s.wake()
}

// SetAddr hands the service the node's overlay address (invalid: none).
func (s *Service) SetAddr(ip netip.Addr) {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.ip = ip
	s.mu.Unlock()
	s.wake()
}

func (s *Service) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Table is the current name table.
func (s *Service) Table() *Table {
	if s == nil {
		return nil
	}
	return s.table.Load()
}

// ServerAddr is where the DNS server listens, if it does.
func (s *Service) ServerAddr() (netip.AddrPort, bool) {
	if s == nil {
		return netip.AddrPort{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return netip.AddrPort{}, false
	}
	return s.srv.Addr(), true
}

// Run applies every change until ctx ends, then stops the DNS server and
// takes the names out of the system resolver (the hosts-file block, the
// resolved link settings).
func (s *Service) Run(ctx context.Context) {
	if s == nil {
		return
	}
	retry := time.NewTicker(retryEvery)
	defer retry.Stop()
	defer s.cleanup()
	for {
		s.apply(ctx)
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-retry.C:
		}
	}
}

func (s *Service) apply(ctx context.Context) {
	s.mu.Lock()
	members, ip := s.members, s.ip
	s.mu.Unlock()
	now := time.Now()
	t := Build(s.spec, members, now)
	s.table.Store(t)
	s.logConflicts(t)

	listen := ip
	if s.opts.Addr.IsValid() {
		listen = s.opts.Addr
	}
	s.serve(listen)
	if !ip.IsValid() {
		// Without an address of our own the others are out of reach: keep
		// the names out of the system until we have one.
		s.unconfigure()
		return
	}
	if s.mode == "" {
		s.mode = s.decide(ctx)
	}
	switch s.mode {
	case ModeResolved:
		srv, ok := s.ServerAddr()
		if ok && srv != s.resolved {
			if err := s.res.apply(ctx, srv, t.Zone()); err != nil {
				s.warn("resolved", "names: systemd-resolved not configured", err, "is systemd-resolved running? else use --dns hosts")
				return
			}
			s.resolved = srv
			s.log.Info("names: resolving through systemd-resolved", "link", s.res.link, "dns", srv, "domains", strings.Join(domains(t.Zone()), " "))
		}
	case ModeHosts:
		changed, err := WriteHostsFile(s.opts.HostsFile, s.spec.Name, t.Zone(), t.Entries(now))
		if err != nil {
			s.warn("hosts", "names: hosts file not updated", err, "run as root, give --hosts-file a writable file, or --dns server/off")
			return
		}
		s.clearErr("hosts")
		if changed {
			s.log.Debug("names: hosts file updated", "file", s.opts.HostsFile, "names", len(t.Entries(now)))
		}
	}
}

// decide resolves ModeAuto: systemd-resolved when resolvectl is installed
// and the DNS server listens (resolved needs it), else the hosts file.
func (s *Service) decide(ctx context.Context) string {
	mode := s.opts.Mode
	if mode == ModeAuto {
		_, serving := s.ServerAddr()
		switch {
		case !s.present():
			mode = ModeHosts
		case !serving:
			mode = ModeHosts
			s.log.Info("names: the DNS server does not listen, so systemd-resolved cannot ask it: using the hosts file instead")
		default:
			srv, _ := s.ServerAddr()
			if err := s.res.apply(ctx, srv, s.table.Load().Zone()); err != nil {
				mode = ModeHosts
				s.log.Info("names: systemd-resolved not usable, using the hosts file instead", "err", err)
			} else {
				mode = ModeResolved
				s.resolved = srv
				s.log.Info("names: resolving through systemd-resolved", "link", s.res.link, "dns", srv, "domains", strings.Join(domains(s.table.Load().Zone()), " "))
			}
		}
	}
	if mode == ModeHosts {
		s.log.Info("names: managing a block of the hosts file", "file", s.opts.HostsFile, "cladnet", s.spec.Name)
	}
	return mode
}

// serve keeps the DNS server listening on addr (none if invalid).
func (s *Service) serve(addr netip.Addr) {
	cur, ok := s.ServerAddr()
	if ok && cur.Addr() == addr {
		return
	}
	s.stopServer()
	if !addr.IsValid() {
		return
	}
	srv, err := Listen(netip.AddrPortFrom(addr, uint16(s.opts.Port)), s.table.Load, s.log)
	if err != nil {
		s.warn("server", "names: DNS server not listening", err, "names still resolve through the hosts file with --dns hosts")
		return
	}
	s.clearErr("server")
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	s.log.Info("names: serving DNS", "addr", srv.Addr(), "zone", s.table.Load().Zone())
}

func (s *Service) stopServer() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// unconfigure takes the names out of the system resolver.
func (s *Service) unconfigure() {
	switch s.mode {
	case ModeHosts:
		if _, err := WriteHostsFile(s.opts.HostsFile, s.spec.Name, "", nil); err != nil {
			s.warn("hosts", "names: hosts file block not removed", err, "remove the lines between '"+beginMarker(s.spec.Name)+"' and '"+endMarker(s.spec.Name)+"'")
		}
	case ModeResolved:
		if s.resolved.IsValid() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := s.res.revert(ctx); err != nil {
				s.log.Debug("names: resolvectl revert", "err", err)
			}
			s.resolved = netip.AddrPort{}
		}
	}
}

func (s *Service) cleanup() {
	s.stopServer()
	s.unconfigure()
}

// logConflicts logs the withheld names when they change.
func (s *Service) logConflicts(t *Table) {
	var b strings.Builder
	for _, c := range t.Conflicts() {
		fmt.Fprintf(&b, "%s/%s/%v;", c.Host, c.Reason, c.Peers)
	}
	if b.String() == s.conflicts {
		return
	}
	s.conflicts = b.String()
	for _, c := range t.Conflicts() {
		s.log.Warn("names: a name is shared by several members, so it resolves to none of them", "host", c.Host, "shared", c.Reason, "peers", c.Peers)
	}
}

// warn logs a failure once until it changes or clears.
func (s *Service) warn(key, msg string, err error, fix string) {
	if s.lastErr[key] == err.Error() {
		return
	}
	s.lastErr[key] = err.Error()
	s.log.Warn(msg, "err", err, "fix", fix)
}

func (s *Service) clearErr(key string) { delete(s.lastErr, key) }
