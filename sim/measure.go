package sim

import (
	"time"

	"github.com/cloud-barista/cbnode/overlay/swim"
)

// MeasureConfig configures Measure.
type MeasureConfig struct {
	N    int
	Seed uint64
	Net  NetConfig
	Swim swim.Config
	// Timeout bounds the convergence of the cold start (default 10 min).
	Timeout time.Duration
	// Idle is the window of idle traffic, from 10 s after convergence
	// (default 60 s: two anti-entropy periods).
	Idle time.Duration
	// Crashes and Leaves: members crashed, then made to leave, one at a
	// time after the idle window (defaults 5 and 3).
	Crashes, Leaves int
}

// KindRate is the idle traffic of one kind, per member per second.
type KindRate struct {
	Kind                  string
	MsgsPerSec, BytesPerS float64 // in + out
}

// Result is what Measure found.
type Result struct {
	N           int
	Converged   bool
	Convergence time.Duration
	// ConvergeBytes is the bytes (in + out) per member until converged.
	ConvergeBytes float64
	// IdleBytesPerNode is the idle traffic (in + out) per member per
	// second, IdleByKind its breakdown.
	IdleBytesPerNode float64
	IdleByKind       []KindRate
	// CrashMean and CrashMax: from a crash until no live member lists the
	// crashed one; CrashMissed: crashes not seen within a minute.
	CrashMean, CrashMax time.Duration
	CrashMissed         int
	// ConfirmsPerCrash: detectors that each confirmed (and published) the
	// same death; DupNotices: death or leave notices received for a
	// member already gone, per member and crash.
	ConfirmsPerCrash float64
	DupNotices       float64
	LeaveMax         time.Duration
	Events           uint64
	Wall             time.Duration
}

// Measure runs a cold start of N members, an idle window, crashes and
// leaves, and reports.
func Measure(c MeasureConfig) (Result, error) {
	wall := time.Now()
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Minute
	}
	if c.Idle <= 0 {
		c.Idle = time.Minute
	}
	if c.Crashes <= 0 {
		c.Crashes = 5
	}
	if c.Leaves <= 0 {
		c.Leaves = 3
	}
	s := New(Config{N: c.N, Seed: c.Seed, Net: c.Net, Swim: c.Swim})
	r := Result{N: c.N}
	s.ColdStart()
	r.Convergence, r.Converged = s.RunUntil(s.Converged, 100*time.Millisecond, c.Timeout)
	all := make([]int, c.N)
	for i := range all {
		all[i] = i
	}
	conv := s.Traffic(all)
	r.ConvergeBytes = float64(conv.Bytes()) / float64(c.N)
	if !r.Converged {
		r.Events, r.Wall = s.Events(), time.Since(wall)
		return r, nil
	}
	s.Run(10 * time.Second)
	live := s.Live()
	before := s.Traffic(live)
	s.Run(c.Idle)
	after := s.Traffic(live)
	d := after.sub(&before)
	per := float64(len(live)) * c.Idle.Seconds()
	r.IdleBytesPerNode = float64(d.Bytes()) / per
	for k := range numTraffic {
		if d.MsgsIn[k]+d.MsgsOut[k] == 0 {
			continue
		}
		r.IdleByKind = append(r.IdleByKind, KindRate{Kind: TrafficName(k),
			MsgsPerSec: float64(d.MsgsIn[k]+d.MsgsOut[k]) / per, BytesPerS: float64(d.BytesIn[k]+d.BytesOut[k]) / per})
	}
	c0 := s.Counters()
	var sum time.Duration
	for range c.Crashes {
		v := s.RandomLive(-1)
		s.Crash(v)
		took, ok := s.RunUntil(func() bool { return s.GoneEverywhere(v) }, 50*time.Millisecond, time.Minute)
		if !ok {
			r.CrashMissed++
		}
		sum += took
		r.CrashMax = max(r.CrashMax, took)
		s.Run(2 * time.Second)
	}
	r.CrashMean = sum / time.Duration(c.Crashes)
	c1 := s.Counters()
	r.ConfirmsPerCrash = float64(c1.Confirmed-c0.Confirmed) / float64(c.Crashes)
	r.DupNotices = float64(c1.DupDeaths-c0.DupDeaths) / float64(c.Crashes) / float64(len(live))
	for range c.Leaves {
		v := s.RandomLive(-1)
		s.Leave(v)
		took, _ := s.RunUntil(func() bool { return s.GoneEverywhere(v) }, 10*time.Millisecond, 30*time.Second)
		r.LeaveMax = max(r.LeaveMax, took)
	}
	r.Events, r.Wall = s.Events(), time.Since(wall)
	return r, nil
}
