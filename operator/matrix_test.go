package operator

import (
	"bytes"
	"encoding/csv"
	"math"
	"testing"

	"github.com/cloud-barista/cbnode/overlay"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestRTTStats(t *testing.T) {
	lo, avg, hi, sd := rttStats([]float64{2, 4, 4, 4, 5, 5, 7, 9})
	if !near(lo, 2) || !near(avg, 5) || !near(hi, 9) || !near(sd, 2) {
		t.Errorf("got %v %v %v %v, want 2 5 9 2", lo, avg, hi, sd)
	}
	if lo, avg, hi, sd := rttStats(nil); lo != 0 || avg != 0 || hi != 0 || sd != 0 {
		t.Error("no samples: not all zero")
	}
}

// TestBuildMatrix: every ordered pair is present; loss from sent/received;
// a missing row or an unmeasured destination is loss 100 % with a reason.
func TestBuildMatrix(t *testing.T) {
	hosts := []TestHost{{HostID: "C", HostName: "vm3"}, {HostID: "A", HostName: "vm1", IP: "10.0.0.1"}, {HostID: "B", HostName: "vm2", IP: "10.0.0.2"}}
	rows := map[string]overlay.TestRow{
		"A": {From: "A", Targets: []overlay.TestSamples{
			{To: "B", Sent: 4, RTTMs: []float64{1, 3}, Path: overlay.TestPath{Transport: "quic"}, Error: "timeout"},
		}},
		"B": {From: "B", Error: "the data plane is down"},
	}
	hs, cells := buildMatrix(hosts, rows, 4)
	if len(cells) != 6 || hs[0].HostName != "vm1" || !hs[0].Reported || hs[2].Reported || hs[2].Error == "" {
		t.Fatalf("hosts %+v, %d cells", hs, len(cells))
	}
	ab := cells[0] // vm1 -> vm2
	if ab.DestinationName != "vm2" || ab.PacketsSent != 4 || ab.PacketsReceive != 2 || ab.PacketLoss != 2 || ab.LossPercent != 50 ||
		!near(ab.AvgRTTMs, 2) || !near(ab.MaxRTTMs, 3) || !near(ab.StddevRTTMs, 1) || !near(ab.AverageRTT, 0.002) || !ab.Measured ||
		ab.Path.Transport != "quic" || ab.Error != "timeout" {
		t.Errorf("vm1->vm2 %+v", ab)
	}
	for _, c := range cells[1:] {
		if c.Measured || c.LossPercent != 100 || c.PacketLoss != 4 || c.Error == "" {
			t.Errorf("%s->%s should be unmeasured: %+v", c.SourceName, c.DestinationName, c)
		}
	}
	var buf bytes.Buffer
	if err := writeCSV(&buf, &TestResult{RunID: "r1", Results: NetworkStatus{InterHostNetworkStatus: cells}}); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil || len(recs) != 7 {
		t.Fatalf("CSV %v: %v", recs, err)
	}
	if got := recs[1]; got[1] != "vm1" || got[3] != "vm2" || got[5] != "4" || got[6] != "2" || got[7] != "50.0" || got[9] != "2.000" || got[13] != "quic" {
		t.Errorf("CSV line %v", got)
	}
}
