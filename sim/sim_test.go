package sim

import (
	"testing"
	"time"

	"github.com/cloud-barista/cbnode/overlay/swim"
)

func coldStart(t *testing.T, cfg Config) *Sim {
	t.Helper()
	s := New(cfg)
	s.ColdStart()
	took, ok := s.RunUntil(s.Converged, 100*time.Millisecond, 2*time.Minute)
	if !ok {
		t.Fatalf("N=%d seed %d: not converged after %v (worst table %.1f %% complete)", cfg.N, cfg.Seed, took, 100*s.Completeness())
	}
	t.Logf("N=%d seed %d: converged in %v", cfg.N, cfg.Seed, took)
	return s
}

// TestCrashDetection: a crashed member is gone from every table within
// 10 s, and no live member is lost on the way.
func TestCrashDetection(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		s := coldStart(t, Config{N: 200, Seed: seed, Net: NetConfig{Loss: 0.01}})
		var worst time.Duration
		for range 5 {
			v := s.RandomLive(-1)
			s.Crash(v)
			took, ok := s.RunUntil(func() bool { return s.GoneEverywhere(v) }, 50*time.Millisecond, 30*time.Second)
			if !ok || took > 10*time.Second {
				t.Fatalf("seed %d: crash of %d seen everywhere after %v (ok %v), want ≤ 10 s", seed, v, took, ok)
			}
			worst = max(worst, took)
			s.Run(2 * time.Second)
		}
		if !s.Converged() {
			t.Fatalf("seed %d: tables differ after the crashes (a live member lost?); worst %.1f %%", seed, 100*s.Completeness())
		}
		t.Logf("seed %d: worst crash detection %v; %+v", seed, worst, s.Counters())
	}
}

// TestGracefulLeave: a leave is gone from every table within 2 s.
func TestGracefulLeave(t *testing.T) {
	s := coldStart(t, Config{N: 200, Seed: 4})
	for range 3 {
		v := s.RandomLive(-1)
		s.Leave(v)
		took, ok := s.RunUntil(func() bool { return s.GoneEverywhere(v) }, 10*time.Millisecond, 10*time.Second)
		if !ok || took > 2*time.Second {
			t.Fatalf("leave of %d seen everywhere after %v (ok %v), want ≤ 2 s", v, took, ok)
		}
	}
	if c := s.Counters(); c.Confirmed != 0 {
		t.Fatalf("%d deaths confirmed for members that left", c.Confirmed)
	}
}

// TestFalseSuspicionRefuted: a live member whose probes are lost for a
// while is suspected, hears of it, and answers (an ack to the suspecter,
// no announcement to everyone) before its death is confirmed; it never
// leaves any table.
func TestFalseSuspicionRefuted(t *testing.T) {
	s := coldStart(t, Config{N: 50, Seed: 5})
	v := 17
	seq := s.Node(v).seq
	s.Drop(func(_, to int, m *swim.Message) bool {
		return to == v && (m.Kind == swim.KindPing || m.Kind == swim.KindPingReq)
	})
	lost := false
	for range 40 { // 4 s of lost probes, then 6 s without
		s.Run(100 * time.Millisecond)
		lost = lost || !s.SeenEverywhereLive(v)
	}
	s.Drop(nil)
	s.Run(6 * time.Second)
	c := s.Counters()
	if c.Detector.Suspicions == 0 {
		t.Fatalf("no suspicion in 4 s of lost probes: the test tests nothing")
	}
	if c.Confirmed != 0 || lost {
		t.Fatalf("member %d dropped (deaths confirmed %d, missing from a table %v); its refutation should have come first", v, c.Confirmed, lost)
	}
	if s.Node(v).suspected == 0 || c.Detector.Refuted == 0 {
		t.Fatalf("member %d answered %d suspicions, %d cleared", v, s.Node(v).suspected, c.Detector.Refuted)
	}
	if s.Node(v).seq != seq {
		t.Fatalf("member %d announced itself anew for a suspicion (seq %d → %d): a suspicion is the suspecter's alone", v, seq, s.Node(v).seq)
	}
	if !s.Converged() {
		t.Fatalf("not converged after the refutation")
	}
	t.Logf("%+v", c)
}

// TestPartitionHeal: each side of a partition drops the other; after the
// heal every table is complete again.
func TestPartitionHeal(t *testing.T) {
	s := coldStart(t, Config{N: 100, Seed: 6})
	s.Partition(func(i int) int { return i % 2 })
	s.Run(30 * time.Second)
	for _, i := range []int{0, 1, 50, 51} {
		for _, j := range s.Live() {
			if (i%2 == j%2) != (s.Node(j).tab.live[i] != 0) {
				t.Fatalf("after 30 s of partition, member %d's table has member %d: %v", j, i, s.Node(j).tab.live[i] != 0)
			}
		}
	}
	s.Partition(nil)
	took, ok := s.RunUntil(s.Converged, 100*time.Millisecond, 3*time.Minute)
	if !ok {
		t.Fatalf("not converged %v after the heal (worst table %.1f %%)", took, 100*s.Completeness())
	}
	t.Logf("healed in %v; %+v", took, s.Counters())
}

// TestChurn: with 10 % of the members replaced per minute (half crash,
// half leave), the tables follow, and converge once churn stops.
func TestChurn(t *testing.T) {
	const n = 200
	s := coldStart(t, Config{N: n, Capacity: 2 * n, Seed: 7, Net: NetConfig{Loss: 0.005}})
	var gone, joined []int
	every := time.Minute / (n / 10) // 10 % per minute
	for k := range 3 * n / 10 {     // 3 minutes
		v := s.RandomLive(-1)
		if k%2 == 0 {
			s.Crash(v)
		} else {
			s.Leave(v)
		}
		gone = append(gone, v)
		j, err := s.Join()
		if err != nil {
			t.Fatal(err)
		}
		joined = append(joined, j)
		s.Run(every)
	}
	took, ok := s.RunUntil(s.Converged, 100*time.Millisecond, time.Minute)
	if !ok {
		s.debugDiff(t)
		t.Fatalf("not converged %v after churn stopped (worst table %.1f %%)", took, 100*s.Completeness())
	}
	for _, v := range gone {
		if !s.GoneEverywhere(v) {
			t.Fatalf("member %d, gone, still listed", v)
		}
	}
	for _, j := range joined {
		if s.Node(j).up && !s.SeenEverywhere(j) {
			t.Fatalf("member %d, joined, not listed everywhere", j)
		}
	}
	t.Logf("converged %v after churn; %+v", took, s.Counters())
}

// TestRegressionN200 runs in make test: a cold start of 200 members
// converges, idles at a constant cost, detects a crash, and two runs with
// one seed give the very same numbers.
func TestRegressionN200(t *testing.T) {
	run := func() Result {
		r, err := Measure(MeasureConfig{N: 200, Seed: 42, Crashes: 3})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	a := run()
	if !a.Converged || a.Convergence > 60*time.Second {
		t.Fatalf("N=200: converged %v in %v, want ≤ 60 s", a.Converged, a.Convergence)
	}
	if a.IdleBytesPerNode > 1000 {
		t.Fatalf("N=200: idle %.0f B/s per node, want ≤ 1000", a.IdleBytesPerNode)
	}
	if a.CrashMax > 10*time.Second || a.CrashMissed > 0 {
		t.Fatalf("N=200: crash detection max %v, %d never seen; want ≤ 10 s", a.CrashMax, a.CrashMissed)
	}
	if a.LeaveMax > 2*time.Second {
		t.Fatalf("N=200: leave seen after %v, want ≤ 2 s", a.LeaveMax)
	}
	if b := run(); b.Convergence != a.Convergence || b.IdleBytesPerNode != a.IdleBytesPerNode || b.CrashMax != a.CrashMax || b.Events != a.Events {
		t.Fatalf("one seed, two results:\n%+v\n%+v", a, b)
	}
	t.Logf("%+v", a)
}

// TestSlowMemberHarmless: a member that handles every message 2 s late
// (a starved CPU) fails its own probes; its local health stretches its
// probing and suspicions, and no healthy member is declared dead.
func TestSlowMemberHarmless(t *testing.T) {
	s := coldStart(t, Config{N: 50, Seed: 8})
	const slow = 9
	c0 := s.Counters()
	s.Slow(slow, 2*time.Second)
	worst := 0
	for range 60 {
		s.Run(time.Second)
		worst = max(worst, s.Node(slow).det.Stats().Health)
	}
	s.Slow(slow, 0)
	s.Run(10 * time.Second)
	c := s.Counters()
	if worst == 0 {
		t.Fatal("the slow member's local health never dropped: the test tests nothing")
	}
	var byOthers uint64
	for _, i := range s.Live() {
		if i != slow {
			byOthers += s.Node(i).suspected
		}
	}
	if s.Node(slow).confirmed != 0 {
		t.Fatalf("the slow member confirmed %d deaths of healthy members", s.Node(slow).confirmed)
	}
	if byOthers > 20 {
		t.Fatalf("healthy members answered %d suspicions in 60 s: the slow member kept suspecting", byOthers)
	}
	if !s.Converged() {
		t.Fatal("not converged 10 s after the member recovered")
	}
	t.Logf("slow member: health up to %d, %d suspicions answered by healthy members, deaths confirmed by all %d", worst, byOthers, c.Confirmed-c0.Confirmed)
}

// TestCutOffMemberConfirmsNothing: a member cut off from every other (its
// link down, its VM suspended) hears nobody; it must not take that for the
// deaths of the members it probed — it holds its suspicions, and once its
// probes are answered again they run anew and clear. The others drop it
// meanwhile (it is unreachable) and take it back when it refutes.
func TestCutOffMemberConfirmsNothing(t *testing.T) {
	for i, cut := range []time.Duration{5 * time.Second, 8 * time.Second, 30 * time.Second} {
		seed := uint64(9 + i)
		s := coldStart(t, Config{N: 50, Seed: seed})
		v := 21 + i
		s.Partition(func(j int) int {
			if j == v {
				return 1
			}
			return 0
		})
		s.Run(cut)
		st := s.Node(v).det.Stats()
		if st.Suspicions == 0 || (cut > 5*time.Second && st.CutOff == 0) {
			t.Fatalf("cut off %v: the member suspected %d members, held %d suspicions: the test tests nothing", cut, st.Suspicions, st.CutOff)
		}
		s.Partition(nil)
		took, ok := s.RunUntil(s.Converged, 100*time.Millisecond, time.Minute)
		if !ok {
			t.Fatalf("cut off %v: not converged %v after the member came back (worst table %.1f %%)", cut, took, 100*s.Completeness())
		}
		if took > 10*time.Second {
			t.Errorf("cut off %v: converged only %v after the member came back, want ≤ 10 s (it should hear of its death from the first member it pings)", cut, took)
		}
		if n := s.Node(v).confirmed; n != 0 {
			t.Fatalf("cut off %v: the member confirmed %d deaths of members that were alive", cut, n)
		}
		t.Logf("cut off %v: %d suspicions, %d held; converged %v after", cut, st.Suspicions, st.CutOff, took)
	}
}

// TestSoleSurvivorConfirms: when every other member crashes, the survivor's
// probes get no answer from anyone — it is cut off, as far as it can tell —
// but it still drops them once holdProbes more probes failed (a cut-off
// node holds its suspicions, not forever).
func TestSoleSurvivorConfirms(t *testing.T) {
	for _, n := range []int{3, 4, 6} {
		s := coldStart(t, Config{N: n, Seed: uint64(20 + n)})
		for i := 1; i < n; i++ {
			s.Crash(i)
		}
		took, ok := s.RunUntil(func() bool {
			for i := 1; i < n; i++ {
				if !s.GoneEverywhere(i) {
					return false
				}
			}
			return true
		}, 100*time.Millisecond, 5*time.Minute)
		st := s.Node(0).det.Stats()
		if !ok {
			t.Fatalf("N=%d: the survivor still holds crashed members after %v: %+v", n, took, st)
		}
		if st.CutOff == 0 {
			t.Fatalf("N=%d: the survivor never held a suspicion: the test tests nothing (%+v)", n, st)
		}
		t.Logf("N=%d: the survivor dropped its %d crashed members after %v (%d suspicions held first)", n, n-1, took, st.CutOff)
	}
}
