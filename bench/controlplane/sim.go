package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"runtime"
	"sort"
	"sync"
	"time"

	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"google.golang.org/protobuf/proto"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/node"
	"github.com/cloud-barista/cbnode/overlay"
)

// result is what one simulation of N members measured. Times are seconds;
// -1 means not measured.
type result struct {
	N     int    `json:"n"`
	Error string `json:"error,omitempty"`

	Started      int     `json:"started"`      // members that started
	StartSec     float64 `json:"startSec"`     // time to start them all
	Converged    bool    `json:"converged"`    // every view complete and consistent
	ConvergedSec float64 `json:"convergedSec"` // from the first member's start
	// MinSeen is the smallest fraction of members with their address that
	// any node listed at the end (1 when converged).
	MinSeen      float64            `json:"minSeen"`
	BestSeen     float64            `json:"bestSeen"`   // the highest MinSeen of any poll
	IPAMSec      float64            `json:"ipamSec"`    // until every allocator first held an address at once
	IPAMMedian   float64            `json:"ipamMedian"` // median time until a member's allocator first held an address
	DupPairs     int                `json:"dupPairs"`   // distinct (IP, peer, peer) ever seen at once in a view
	DupExamples  []string           `json:"dupExamples,omitempty"`
	FinalUnique  bool               `json:"finalUnique"`
	Assigned     int                `json:"assigned"` // allocators holding an address at the end // allocators' Current() all valid and distinct
	StillOK      bool               `json:"stillOK"`  // still converged after the idle window
	Polls        int                `json:"polls"`
	AnnBytes     int                `json:"annBytes"`    // one real signed announcement, JSON
	GossipBytes  int                `json:"gossipBytes"` // the same as one gossipsub RPC on a stream
	AnnSample    string             `json:"annSample,omitempty"`
	ValidateUS   float64            `json:"validateUS"` // µs to verify one announcement (origin signature + ParseAnnouncement)
	ConnsPerNode float64            `json:"connsPerNode"`
	ConnsByTrans map[string]float64 `json:"connsByTransport"` // per member

	IdleSec       float64            `json:"idleSec"`
	IdleMean      float64            `json:"idleMean"` // B/s per member, in+out
	IdleMax       float64            `json:"idleMax"`
	IdleMeanIn    float64            `json:"idleMeanIn"`
	IdleMeanOut   float64            `json:"idleMeanOut"`
	IdleBoot      float64            `json:"idleBoot"`      // the bootstrap node, in+out
	IdleEvents    float64            `json:"idleEvents"`    // members-table changes per member per minute
	IdleGets      float64            `json:"idleGets"`      // IPAM DHT reads per member per minute
	IdlePuts      float64            `json:"idlePuts"`      // IPAM DHT writes per member per minute
	DHTServers    float64            `json:"dhtServers"`    // routing-table size per member at the end
	IdleByProto   map[string]float64 `json:"idleByProto"`   // B/s per member, in+out
	ConvergeBytes float64            `json:"convergeBytes"` // per member, start to convergence, in+out
	ConvByProto   map[string]float64 `json:"convByProto"`   // bytes per member until convergence, in+out

	IdleCPU    float64 `json:"idleCPU"` // process CPU seconds per second over the idle window
	ConvCPU    float64 `json:"convCPU"` // process CPU seconds per second until convergence
	HeapMiB    float64 `json:"heapMiB"` // per member
	RSSMiB     float64 `json:"rssMiB"`  // per member
	Goroutines float64 `json:"goroutines"`
	FDs        int     `json:"fds"`

	// Peak resource-manager usage of the bootstrap node while converging,
	// next to its limits: system and transient scopes.
	BootPeak  scopeUse `json:"bootPeak"`
	BootLimit scopeUse `json:"bootLimit"`
	ConvBoot  float64  `json:"convBoot"` // the bootstrap node's B/s while converging, in+out

	// The machine's 1-minute load average at the start and the end.
	LoadStart float64 `json:"loadStart"`
	LoadEnd   float64 `json:"loadEnd"`

	Log []logEvent `json:"log,omitempty"`
}

// scopeUse is a subset of a resource-manager scope's counters.
type scopeUse struct {
	SysConnsIn, SysStreamsIn, TransConnsIn, TransStreamsIn int
}

func (u *scopeUse) peak(v scopeUse) {
	u.SysConnsIn = max(u.SysConnsIn, v.SysConnsIn)
	u.SysStreamsIn = max(u.SysStreamsIn, v.SysStreamsIn)
	u.TransConnsIn = max(u.TransConnsIn, v.TransConnsIn)
	u.TransStreamsIn = max(u.TransStreamsIn, v.TransStreamsIn)
}

// rcmgrUse reads a host's system and transient scope usage.
func rcmgrUse(n *node.Node) scopeUse {
	var u scopeUse
	rm := n.Host.Network().ResourceManager()
	_ = rm.ViewSystem(func(s network.ResourceScope) error {
		st := s.Stat()
		u.SysConnsIn, u.SysStreamsIn = st.NumConnsInbound, st.NumStreamsInbound
		return nil
	})
	_ = rm.ViewTransient(func(s network.ResourceScope) error {
		st := s.Stat()
		u.TransConnsIn, u.TransStreamsIn = st.NumConnsInbound, st.NumStreamsInbound
		return nil
	})
	return u
}

// rcmgrLimits reads the limits of the same counters from a host's resource
// manager (zero where it does not expose them).
func rcmgrLimits(n *node.Node) scopeUse {
	var u scopeUse
	rm := n.Host.Network().ResourceManager()
	_ = rm.ViewSystem(func(s network.ResourceScope) error {
		if l, ok := s.(rcmgr.ResourceScopeLimiter); ok {
			u.SysConnsIn, u.SysStreamsIn = l.Limit().GetConnLimit(network.DirInbound), l.Limit().GetStreamLimit(network.DirInbound)
		}
		return nil
	})
	_ = rm.ViewTransient(func(s network.ResourceScope) error {
		if l, ok := s.(rcmgr.ResourceScopeLimiter); ok {
			u.TransConnsIn, u.TransStreamsIn = l.Limit().GetConnLimit(network.DirInbound), l.Limit().GetStreamLimit(network.DirInbound)
		}
		return nil
	})
	return u
}

// simOptions are the knobs of one simulation.
type simOptions struct {
	n         int
	heartbeat time.Duration
	missed    int
	idle      time.Duration
	settle    time.Duration
	timeout   time.Duration
	cidr      string
	maxRSS    int64 // bytes; stop starting members above this
	workers   int
	joinRate  float64 // members started per second; 0: as fast as the workers go
	cpuProf   string  // child only: write a CPU profile of the whole run here
}

// simulate runs one bootstrap node and o.n members in this process.
func simulate(o simOptions) (res result) {
	res = result{N: o.n, ConvergedSec: -1, IPAMSec: -1, IPAMMedian: -1, IdleMean: -1, IdleMax: -1, IdleBoot: -1}
	logs := newLogCounter()
	defer func() { res.Log = logs.top() }()
	log := slog.New(logs)
	dir, err := os.MkdirTemp("", "cbnode-controlplane-")
	if err != nil {
		res.Error = fmt.Sprintf("temp dir: %v", err)
		return res
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if o.cpuProf != "" {
		stop, err := startCPUProfile(o.cpuProf)
		if err != nil {
			res.Error = err.Error()
			return res
		}
		defer stop()
	}

	res.LoadStart = loadAvg()
	baseHeap, baseRSS, baseG := memNow()
	owner, err := cladnet.Create(dir, "bench", o.cidr, cladnet.RuleBasic, "control-plane simulation", time.Now())
	if err != nil {
		res.Error = fmt.Sprintf("CLADNet: %v", err)
		return res
	}
	prefix, err := owner.Spec.Prefix()
	if err != nil {
		res.Error = err.Error()
		return res
	}
	res.ValidateUS = validateCost(owner)
	boot, bootMeter, err := startBootstrap(ctx, log)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	sc := &simConfig{owner: owner, prefix: prefix, heartbeat: o.heartbeat, missed: o.missed, dir: dir, log: log,
		boot: []peer.AddrInfo{{ID: boot.Host.ID(), Addrs: boot.Host.Addrs()}}}

	start, cpu0 := time.Now(), cpuSeconds()
	members, err := startMembers(ctx, sc, o)
	res.Started = len(members)
	res.StartSec = time.Since(start).Seconds()
	progress("n=%d: started %d members in %.1f s", o.n, len(members), res.StartSec)
	if err != nil {
		res.Error = err.Error()
		res.HeapMiB, res.RSSMiB, res.Goroutines = perNode(len(members), baseHeap, baseRSS, baseG)
		return res
	}

	w := newWatcher(members, start)
	deadline := start.Add(o.timeout)
	for {
		ok, minSeen := w.poll()
		res.MinSeen, res.BestSeen = minSeen, max(res.BestSeen, minSeen)
		res.BootPeak.peak(rcmgrUse(boot))
		if w.allIP && res.IPAMSec < 0 {
			res.IPAMSec = time.Since(start).Seconds()
		}
		if ok {
			res.Converged = true
			res.ConvergedSec = time.Since(start).Seconds()
			break
		}
		if time.Now().After(deadline) {
			break
		}
		if w.polls%40 == 0 {
			progress("n=%d: %.0f s, least complete view %.0f %%, %d duplicate pairs so far",
				o.n, time.Since(start).Seconds(), 100*minSeen, len(w.dups))
		}
		time.Sleep(250 * time.Millisecond)
	}
	res.ConvCPU = (cpuSeconds() - cpu0) / time.Since(start).Seconds()
	bt := bootMeter.GetBandwidthTotals()
	res.ConvBoot = float64(bt.TotalIn+bt.TotalOut) / time.Since(start).Seconds()
	res.BootLimit = rcmgrLimits(boot)
	res.IPAMMedian = w.medianFirstIP()
	res.ConvByProto = map[string]float64{}
	for _, m := range members {
		s := m.meter.snapshot()
		res.ConvergeBytes += float64(s.in+s.out) / float64(len(members))
		for p, st := range s.proto {
			res.ConvByProto[string(p)] += float64(st.TotalIn+st.TotalOut) / float64(len(members))
		}
	}
	res.AnnBytes, res.GossipBytes, res.AnnSample = announcementSize(members[0], owner.Spec.ID)
	if res.Converged {
		progress("n=%d: converged after %.1f s", o.n, res.ConvergedSec)
		measureIdle(ctx, &res, o, w, members, bootMeter)
	} else {
		progress("n=%d: not converged within %s (least complete view %.0f %%)", o.n, o.timeout, 100*res.MinSeen)
	}
	res.DupPairs, res.DupExamples = len(w.dups), w.examples()
	res.Polls = w.polls
	res.FinalUnique = finalUnique(members)
	for _, m := range members {
		if m.alloc.Current().IsValid() {
			res.Assigned++
		}
	}
	res.LoadEnd = loadAvg()
	var conns, rt int
	res.ConnsByTrans = map[string]float64{}
	for _, m := range members {
		cs := m.node.Host.Network().Conns()
		conns += len(cs)
		for _, c := range cs {
			res.ConnsByTrans[c.ConnState().Transport]++
		}
		rt += m.node.DHT.RoutingTable().Size()
	}
	for t := range res.ConnsByTrans {
		res.ConnsByTrans[t] /= float64(len(members))
	}
	res.ConnsPerNode = float64(conns) / float64(len(members))
	res.DHTServers = float64(rt) / float64(len(members))
	res.HeapMiB, res.RSSMiB, res.Goroutines = perNode(len(members), baseHeap, baseRSS, baseG)
	res.FDs = openFDs()
	return res
}

// startMembers starts o.n members with a few workers, stopping early on an
// error or when the process RSS exceeds o.maxRSS.
func startMembers(ctx context.Context, sc *simConfig, o simOptions) ([]*member, error) {
	members := make([]*member, o.n)
	next := make(chan int)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	for range o.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				m, err := startMember(ctx, sc, i)
				if err != nil {
					fail(err)
					continue
				}
				members[i] = m
			}
		}()
	}
	for i := range o.n {
		mu.Lock()
		stop := firstErr != nil
		mu.Unlock()
		if stop {
			break
		}
		if i%10 == 0 {
			if rss := rssBytes(); o.maxRSS > 0 && rss > o.maxRSS {
				fail(fmt.Errorf("stopped after %d members: RSS %.1f GiB exceeds the limit of %.1f GiB",
					i, float64(rss)/(1<<30), float64(o.maxRSS)/(1<<30)))
				break
			}
		}
		if o.joinRate > 0 && i > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(float64(time.Second) / o.joinRate)):
			}
		}
		next <- i
	}
	close(next)
	wg.Wait()
	var out []*member
	for _, m := range members {
		if m != nil {
			out = append(out, m)
		}
	}
	return out, firstErr
}

// watcher samples every member's view of the members table.
type watcher struct {
	members []*member
	dups    map[[3]string]struct{} // IP, lower peer ID, higher peer ID
	polls   int
	allIP   bool // at the last poll, every allocator held an address
	start   time.Time
	firstIP map[peer.ID]time.Duration // since start, first poll a member's allocator held an address
}

func newWatcher(ms []*member, start time.Time) *watcher {
	return &watcher{members: ms, dups: map[[3]string]struct{}{}, start: start, firstIP: map[peer.ID]time.Duration{}}
}

// medianFirstIP is the median time (s) until a member first held an
// address, -1 unless more than half did.
func (w *watcher) medianFirstIP() float64 {
	if 2*len(w.firstIP) <= len(w.members) {
		return -1
	}
	ds := make([]time.Duration, 0, len(w.members))
	for _, d := range w.firstIP {
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[(len(w.members)-1)/2].Seconds()
}

// poll records duplicates in every view and reports whether every view lists
// all members, each with the address its allocator holds; minSeen is the
// smallest fraction of members with an address in any view.
func (w *watcher) poll() (converged bool, minSeen float64) {
	w.polls++
	n := len(w.members)
	current := make(map[peer.ID]netip.Addr, n)
	w.allIP = true
	for _, m := range w.members {
		ip := m.alloc.Current()
		if !ip.IsValid() {
			w.allIP = false
		} else if _, ok := w.firstIP[m.id]; !ok {
			w.firstIP[m.id] = time.Since(w.start)
		}
		current[m.id] = ip
	}
	converged = w.allIP
	minSeen = 1
	for _, m := range w.members {
		byIP := make(map[string]peer.ID, n)
		withIP, agree := 0, true
		for _, mem := range m.mem.Members() {
			ip := mem.Ann.OverlayIP
			if ip == "" {
				agree = false
				continue
			}
			withIP++
			if other, dup := byIP[ip]; dup && other != mem.ID {
				a, b := other.String(), mem.ID.String()
				if b < a {
					a, b = b, a
				}
				w.dups[[3]string{ip, a, b}] = struct{}{}
			}
			byIP[ip] = mem.ID
			if cur, ok := current[mem.ID]; !ok || cur.String() != ip {
				agree = false
			}
		}
		if f := float64(withIP) / float64(n); f < minSeen {
			minSeen = f
		}
		if withIP != n || !agree {
			converged = false
		}
	}
	return converged, minSeen
}

func (w *watcher) examples() []string {
	var out []string
	for k := range w.dups {
		out = append(out, fmt.Sprintf("%s held by %s and %s", k[0], k[1], k[2]))
	}
	sort.Strings(out)
	if len(out) > 5 {
		out = out[:5]
	}
	return out
}

// finalUnique reports whether no two allocators hold the same address.
func finalUnique(ms []*member) bool {
	seen := map[netip.Addr]bool{}
	for _, m := range ms {
		ip := m.alloc.Current()
		if !ip.IsValid() {
			continue
		}
		if seen[ip] {
			return false
		}
		seen[ip] = true
	}
	return true
}

// measureIdle waits o.settle, then counts every node's stream bytes over
// o.idle while still watching the views.
func measureIdle(ctx context.Context, res *result, o simOptions, w *watcher, ms []*member, boot *meter) {
	progress("n=%d: settling %s, then measuring idle traffic for %s", o.n, o.settle, o.idle)
	watchFor(ctx, w, o.settle)
	before := make([]snapshot, len(ms))
	var ev0, get0, put0 int64
	for i, m := range ms {
		before[i] = m.meter.snapshot()
		ev0 += m.events.Load()
		get0 += m.dht.gets.Load()
		put0 += m.dht.puts.Load()
	}
	bootBefore := boot.snapshot()
	t0, cpu0 := time.Now(), cpuSeconds()
	ok := watchFor(ctx, w, o.idle)
	secs := time.Since(t0).Seconds()
	res.IdleCPU = (cpuSeconds() - cpu0) / secs
	res.IdleSec = secs
	res.StillOK = ok
	var sum, sumIn, sumOut, maxRate float64
	byProto := map[string]float64{}
	for i, m := range ms {
		after := m.meter.snapshot()
		in, out := float64(after.in-before[i].in), float64(after.out-before[i].out)
		sumIn += in
		sumOut += out
		rate := (in + out) / secs
		sum += rate
		maxRate = max(maxRate, rate)
		for p, st := range after.proto {
			b := before[i].proto[p]
			byProto[string(p)] += float64(st.TotalIn-b.TotalIn+st.TotalOut-b.TotalOut) / secs
		}
	}
	n := float64(len(ms))
	res.IdleMean, res.IdleMax = sum/n, maxRate
	res.IdleMeanIn, res.IdleMeanOut = sumIn/secs/n, sumOut/secs/n
	res.IdleByProto = map[string]float64{}
	for p, v := range byProto {
		if v > 0 {
			res.IdleByProto[p] = v / n
		}
	}
	var ev1, get1, put1 int64
	for _, m := range ms {
		ev1 += m.events.Load()
		get1 += m.dht.gets.Load()
		put1 += m.dht.puts.Load()
	}
	perMin := func(v int64) float64 { return float64(v) / n / secs * 60 }
	res.IdleEvents, res.IdleGets, res.IdlePuts = perMin(ev1-ev0), perMin(get1-get0), perMin(put1-put0)
	bootAfter := boot.snapshot()
	res.IdleBoot = float64(bootAfter.in-bootBefore.in+bootAfter.out-bootBefore.out) / secs
}

// watchFor polls the views every second for d; it reports whether the last
// poll found them converged.
func watchFor(ctx context.Context, w *watcher, d time.Duration) bool {
	end := time.Now().Add(d)
	ok := false
	for {
		ok, _ = w.poll()
		left := time.Until(end)
		if left <= 0 {
			return ok
		}
		select {
		case <-ctx.Done():
			return ok
		case <-time.After(min(left, time.Second)):
		}
	}
}

// announcementSize returns the size of m's newest announcement as its members
// table holds it (the data of each gossip message), and the size of the
// length-prefixed gossipsub RPC that carries it alone: signed by the origin,
// whose Ed25519 key is inlined in its peer ID.
func announcementSize(m *member, cladnetID string) (ann, rpc int, sample string) {
	self, ok := m.mem.Member(m.id)
	if !ok {
		return 0, 0, ""
	}
	b, err := self.Ann.Marshal()
	if err != nil {
		return 0, 0, ""
	}
	topic := overlay.TopicName(cladnetID)
	msg := &pb.Message{From: []byte(m.id), Data: b, Seqno: make([]byte, 8), Topic: &topic, Signature: make([]byte, 64)}
	r := &pb.RPC{Publish: []*pb.Message{msg}}
	size := proto.Size(r)
	return len(b), size + len(binary.AppendUvarint(nil, uint64(size))), string(b)
}

// validateCost measures what a member spends to accept one announcement:
// gossipsub's check of the origin's signature (one Ed25519 verification)
// plus overlay.ParseAnnouncement (JSON, certificate and announcement
// signatures), in µs, on an announcement shaped like a member's. It runs
// before any host starts, so the machine's other load is all that disturbs
// it; 0 if the announcement does not verify.
func validateCost(owner *cladnet.Owner) float64 {
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return 0
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		return 0
	}
	cert, err := cladnet.SignCertificate(owner.Key, owner.Spec, id, "n0000", nil, time.Now(), time.Hour)
	if err != nil {
		return 0
	}
	a := &overlay.Announcement{Kind: overlay.KindAnnounce, PeerID: id.String(), Cert: cert, HostName: cert.HostName,
		Addrs: []string{"/ip4/127.0.0.1/tcp/40000", "/ip4/127.0.0.1/udp/40000/quic-v1"},
		State: overlay.StateTunneling, Seq: uint64(time.Now().UnixNano()), Time: time.Now().UTC()}
	if err := a.Sign(k); err != nil {
		return 0
	}
	data, err := a.Marshal()
	if err != nil {
		return 0
	}
	pub := k.GetPublic()
	const rounds = 200
	t0 := time.Now()
	for range rounds {
		_, _ = pub.Verify(data, a.Signature) // stands in for the origin signature: same cost
		if _, err := overlay.ParseAnnouncement(data, id, owner.Spec, time.Now()); err != nil {
			return 0
		}
	}
	return float64(time.Since(t0).Microseconds()) / rounds
}

// perNode returns heap in use and RSS (MiB) and goroutines above the
// baselines, divided by n.
func perNode(n int, baseHeap, baseRSS int64, baseG int) (heap, rss, g float64) {
	if n == 0 {
		return 0, 0, 0
	}
	h, r, gs := memNow()
	const mib = 1 << 20
	return float64(h-baseHeap) / mib / float64(n), float64(r-baseRSS) / mib / float64(n), float64(gs-baseG) / float64(n)
}

// memNow collects garbage and returns heap in use, RSS and goroutines.
func memNow() (heap, rss int64, goroutines int) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse), rssBytes(), runtime.NumGoroutine()
}
