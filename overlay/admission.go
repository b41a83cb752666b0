package overlay

import (
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/cladnet"
)

// Admission keeps a CLADNet's gossip among peers whose certificate this
// node verified (a row in the members table: a member or an operator, with
// a live certificate). Anyone may connect to a node and subscribe to its
// topics; without admission, flood publishing and the mesh would hand such
// a peer every announcement (underlay addresses, cloud placement). With it:
//
//   - the gossipsub peer filter keeps unverified peers out of the mesh
//     (their GRAFTs are ignored), out of gossip (IHAVE/IWANT) and fanout;
//   - the application-specific peer score puts them below the publish and
//     gossip thresholds (but above the graylist, so that their own
//     announcement — which verifies them — is still heard), so flood
//     publishing skips them too;
//   - invalid messages (a document or announcement the validator rejects)
//     cost the sender score on that topic (P4), so a flood of junk
//     graylists the sender: its RPCs are then dropped unread.
//
// Two members that do not know each other yet (a newcomer, a restart, the
// two sides of a healed partition) introduce themselves on connecting
// (Introducer: each shows its certificate, the dialler first), and the
// members table pull and the announcements do the rest; scores are
// computed live, so a peer is admitted the moment it is verified.
type Admission struct {
	verified atomic.Pointer[func(peer.ID) bool]
	outsider atomic.Uint64 // peer-filter refusals (mesh, gossip, fanout, IWANT)

	// introduced are peers whose certificate an Introducer verified
	// (before their announcement reached the members table).
	mu         sync.Mutex
	introduced map[peer.ID]introduced
}

type introduced struct {
	cert    *cladnet.Certificate
	revoked func(*cladnet.Certificate) bool
}

// maxIntroduced bounds Admission.introduced.
const maxIntroduced = 1 << 16

// admit records p's verified certificate c (revoked, if set, is asked on
// every check).
func (a *Admission) admit(p peer.ID, c *cladnet.Certificate, revoked func(*cladnet.Certificate) bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.introduced == nil {
		a.introduced = map[peer.ID]introduced{}
	}
	if _, ok := a.introduced[p]; !ok && len(a.introduced) >= maxIntroduced {
		now := time.Now()
		for k, v := range a.introduced { // expired ones, else an eighth
			if !now.Before(v.cert.NotAfter) || len(a.introduced) > maxIntroduced-maxIntroduced/8 {
				delete(a.introduced, k)
			}
		}
	}
	a.introduced[p] = introduced{cert: c, revoked: revoked}
}

// wasIntroduced reports whether p showed a live, unrevoked certificate.
func (a *Admission) wasIntroduced(p peer.ID) bool {
	a.mu.Lock()
	in, ok := a.introduced[p]
	a.mu.Unlock()
	return ok && time.Now().Before(in.cert.NotAfter) && (in.revoked == nil || !in.revoked(in.cert))
}

// Score thresholds: a verified peer scores 0 minus its penalties; an
// unverified one UnverifiedScore.
const (
	GossipThreshold   = -10
	PublishThreshold  = -50
	GraylistThreshold = -80
	// UnverifiedScore is below the publish threshold, above the graylist.
	UnverifiedScore = -60
)

// NewAdmission returns an admission that verifies nobody until Bind.
func NewAdmission() *Admission { return &Admission{} }

// Bind sets the check: verified reports whether p holds a certificate
// this node verified (Membership.Known).
func (a *Admission) Bind(verified func(peer.ID) bool) { a.verified.Store(&verified) }

// Verified reports whether p is admitted to the CLADNet's gossip: in the
// members table, or introduced with a live certificate.
func (a *Admission) Verified(p peer.ID) bool {
	if f := a.verified.Load(); f != nil && (*f)(p) {
		return true
	}
	return a.wasIntroduced(p)
}

// Refusals is how many times the peer filter turned an unverified peer
// away (a GRAFT, an IHAVE/IWANT, a mesh or fanout slot).
func (a *Admission) Refusals() uint64 { return a.outsider.Load() }

// PubSubOptions are the gossipsub options enforcing the admission; give
// them to node.Config.PubSubOptions.
func (a *Admission) PubSubOptions() []pubsub.Option {
	filter := func(p peer.ID, _ string) bool {
		if a.Verified(p) {
			return true
		}
		a.outsider.Add(1)
		return false
	}
	params := &pubsub.PeerScoreParams{
		SkipAtomicValidation: true,
		AppSpecificScore: func(p peer.ID) float64 {
			if a.Verified(p) {
				return 0
			}
			return UnverifiedScore
		},
		AppSpecificWeight: 1,
		// Many members may share an address (NAT, a lab on 127.0.0.1):
		// no IP colocation penalty.
		IPColocationFactorWeight:  0,
		BehaviourPenaltyWeight:    -1,
		BehaviourPenaltyThreshold: 10,
		BehaviourPenaltyDecay:     0.9,
		DecayInterval:             time.Second,
		DecayToZero:               0.01,
		RetainScore:               10 * time.Minute,
		Topics:                    map[string]*pubsub.TopicScoreParams{},
	}
	thresholds := &pubsub.PeerScoreThresholds{
		SkipAtomicValidation: true,
		GossipThreshold:      GossipThreshold,
		PublishThreshold:     PublishThreshold,
		GraylistThreshold:    GraylistThreshold,
	}
	return []pubsub.Option{
		pubsub.WithPeerFilter(filter),
		pubsub.WithPeerScore(params, thresholds),
	}
}

// TopicScoreParams penalize invalid messages on a topic: each rejected
// message adds 1 to a counter decaying by 10% a second, and the score
// loses 10 × counter², so three junk messages in a row graylist the sender
// for a few seconds; a verified member that sent one bad document recovers
// within seconds.
func TopicScoreParams() *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
		SkipAtomicValidation: true,
		TopicWeight:          1,
		TimeInMeshQuantum:    time.Second, // unused (weight 0), but divides

		InvalidMessageDeliveriesWeight: -10,
		InvalidMessageDeliveriesDecay:  0.9,
	}
}
