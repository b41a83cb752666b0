package daemon

import (
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/node"
	"github.com/cloud-barista/cbnode/overlay/forward"
	"github.com/cloud-barista/cbnode/overlay/pathlog"
)

// The path history (package pathlog) is fed from three places: the data
// plane's stream changes, the node's hole punches and the membership's
// "member moved or restarted". Each entry is also logged at INFO with a
// "heal:" prefix, so a heal can be followed in the logs with timestamps.

func (m *Member) recordPath(p peer.ID, path *forward.PathInfo, why string) {
	c := pathlog.PathChange(false, "", "", why)
	if path != nil {
		c = pathlog.PathChange(path.Relayed, path.Remote, path.Transport, why)
	}
	m.history.Record(p, c)
	m.log.Info("heal: path "+c.Path, "peer", p, "host", m.hostOf(p), "remote", c.Remote, "via", c.Via, "why", why)
}

func (m *Member) recordPunch(p peer.ID, hp node.HolePunch) {
	why := "succeeded in " + hp.Duration
	if !hp.Success {
		why = "failed after " + hp.Duration + ": " + hp.Error
	}
	m.history.Record(p, pathlog.Change{At: hp.At, Event: pathlog.EventPunch, Reason: why})
}

func (m *Member) recordMoved(p peer.ID, restarted bool) {
	c := pathlog.Change{Event: pathlog.EventMoved, Reason: "announced other addresses; connections probed"}
	if restarted {
		c = pathlog.Change{Event: pathlog.EventRestarted, Reason: "announced a new instance; connections probed"}
	}
	m.history.Record(p, c)
}

// hostOf is p's host name, "" if it is not in the members table.
func (m *Member) hostOf(p peer.ID) string {
	if m.mem == nil {
		return ""
	}
	if mem, ok := m.mem.Member(p); ok && mem.Ann != nil {
		return mem.Ann.HostName
	}
	return ""
}
