package filter

import (
	"sync"
	"sync/atomic"
	"time"
)

// Default flow idle timeouts (Nebula's defaults for TCP and UDP).
const (
	DefaultTCPTimeout   = 12 * time.Minute
	DefaultUDPTimeout   = 3 * time.Minute
	DefaultOtherTimeout = 30 * time.Second
	// DefaultMaxFlows bounds the flow table.
	DefaultMaxFlows = 65536
)

const nShards = 16

// flowKey names a flow from this node's point of view. For ICMP echo,
// lport is the identifier and rport 0.
type flowKey struct {
	local, remote uint32
	lport, rport  uint16
	proto         uint8
}

func (k flowKey) shard() int {
	h := uint64(k.local)*0x9e3779b97f4a7c15 ^ uint64(k.remote)*0xc2b2ae3d27d4eb4f ^
		uint64(k.lport)<<32 ^ uint64(k.rport)<<16 ^ uint64(k.proto)
	h ^= h >> 29
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 32
	return int(h % nShards)
}

type shard struct {
	mu sync.Mutex
	m  map[flowKey]int64 // flow -> expiry (Options.Now scale, nanoseconds)
	_  [40]byte          // keep shards on separate cache lines
}

// conntrack is a bounded, sharded table of flows this node sent on.
type conntrack struct {
	shards   [nShards]shard
	perShard int
	timeout  [3]int64 // tcp, udp, other
	evicted  atomic.Uint64
}

func newConntrack(max int, tcp, udp, other time.Duration) *conntrack {
	per := max / nShards
	if per < 1 {
		per = 1
	}
	c := &conntrack{perShard: per, timeout: [3]int64{int64(tcp), int64(udp), int64(other)}}
	for i := range c.shards {
		c.shards[i].m = make(map[flowKey]int64)
	}
	return c
}

func (c *conntrack) ttl(proto uint8) int64 {
	switch proto {
	case protoTCP:
		return c.timeout[0]
	case protoUDP:
		return c.timeout[1]
	}
	return c.timeout[2]
}

// track records (or refreshes) flow k at time now.
func (c *conntrack) track(k flowKey, now int64) {
	s := &c.shards[k.shard()]
	exp := now + c.ttl(k.proto)
	s.mu.Lock()
	if _, ok := s.m[k]; !ok && len(s.m) >= c.perShard {
		c.makeRoom(s, now)
	}
	s.m[k] = exp
	s.mu.Unlock()
}

// makeRoom frees slots in the full shard s (locked): every expired flow,
// and if none was, an arbitrary eighth of the shard (at least one), so a
// table full of live flows costs O(1) amortized per insert.
func (c *conntrack) makeRoom(s *shard, now int64) {
	for k, exp := range s.m {
		if exp <= now {
			delete(s.m, k)
		}
	}
	target := c.perShard - max(1, c.perShard/8)
	for k := range s.m {
		if len(s.m) <= target {
			break
		}
		delete(s.m, k)
		c.evicted.Add(1)
	}
}

// established reports whether k is a live tracked flow.
func (c *conntrack) established(k flowKey, now int64) bool {
	s := &c.shards[k.shard()]
	s.mu.Lock()
	exp, ok := s.m[k]
	if ok && exp <= now {
		delete(s.m, k)
		ok = false
	}
	s.mu.Unlock()
	return ok
}

// len counts tracked flows (expired ones not yet forgotten included).
func (c *conntrack) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}
