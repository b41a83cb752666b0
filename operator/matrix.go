package operator

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/cloud-barista/cbnode/overlay"
)

// TestTypeConnectivity is cb-network's only test type (alias RTT).
const TestTypeConnectivity = "CONNECTIVITY"

// TestResult is one connectivity test run: POST /v1/test/cladnet/{id}/type/
// CONNECTIVITY answers it, GET .../run/{runId} reads it later. isSucceeded
// and message are cb-network's TestResponse; results is cb-network's
// NetworkStatus (interHostNetworkStatus, RTTs in seconds) with every ordered
// pair of members, measured or not.
type TestResult struct {
	IsSucceeded bool          `json:"isSucceeded"`
	Message     string        `json:"message"`
	RunID       string        `json:"runId"`
	CladnetID   string        `json:"cladnetId"`
	CladnetName string        `json:"cladnetName"`
	TestType    string        `json:"testType"`
	TrialCount  int           `json:"trialCount"`
	Interval    string        `json:"interval"`
	StartedAt   time.Time     `json:"startedAt"`
	FinishedAt  time.Time     `json:"finishedAt"`
	Hosts       []TestHost    `json:"hosts"`
	Results     NetworkStatus `json:"results"`
}

// TestHost is one member of a run: whether its row arrived in time.
type TestHost struct {
	HostID   string `json:"hostId"`
	HostName string `json:"hostName"`
	IP       string `json:"ip"`
	Reported bool   `json:"reported"`
	Error    string `json:"error,omitempty"`
}

// NetworkStatus is cb-network's NetworkStatus.
type NetworkStatus struct {
	InterHostNetworkStatus []InterHostNetworkStatus `json:"interHostNetworkStatus"`
}

// InterHostNetworkStatus is one ordered pair (source measured destination).
// cb-network's fields (RTTs in seconds, its spelling "minimunRTT" kept)
// come first, then cbnode's: IDs, sent count, loss in percent, RTTs in
// milliseconds, the path the probes took.
type InterHostNetworkStatus struct {
	SourceIP        string           `json:"sourceIP"`
	SourceName      string           `json:"sourceName"`
	DestinationIP   string           `json:"destinationIP"`
	DestinationName string           `json:"destinationName"`
	MinimumRTT      float64          `json:"minimunRTT"`
	AverageRTT      float64          `json:"averageRTT"`
	MaximumRTT      float64          `json:"maximumRTT"`
	StddevRTT       float64          `json:"stddevRTT"`
	PacketsReceive  int              `json:"packetsReceive"`
	PacketLoss      int              `json:"packetLoss"`
	SourceID        string           `json:"sourceId"`
	DestinationID   string           `json:"destinationId"`
	PacketsSent     int              `json:"packetsSent"`
	LossPercent     float64          `json:"lossPercent"`
	MinRTTMs        float64          `json:"minRttMs"`
	AvgRTTMs        float64          `json:"avgRttMs"`
	MaxRTTMs        float64          `json:"maxRttMs"`
	StddevRTTMs     float64          `json:"stddevRttMs"`
	Path            overlay.TestPath `json:"path"`
	Measured        bool             `json:"measured"` // at least one reply
	Error           string           `json:"error,omitempty"`
}

// rttStats are min, mean, max and population standard deviation of
// samples (as ping reports them); all zero for no samples.
func rttStats(samples []float64) (lo, avg, hi, sd float64) {
	if len(samples) == 0 {
		return 0, 0, 0, 0
	}
	lo, hi = math.Inf(1), math.Inf(-1)
	var sum float64
	for _, s := range samples {
		lo, hi, sum = math.Min(lo, s), math.Max(hi, s), sum+s
	}
	avg = sum / float64(len(samples))
	var sq float64
	for _, s := range samples {
		sq += (s - avg) * (s - avg)
	}
	return lo, avg, hi, math.Sqrt(sq / float64(len(samples)))
}

// pairStatus turns one pair's samples into a matrix cell. sent is what the
// source reports; a cell without replies has loss 100 %.
func pairStatus(src, dst TestHost, ts *overlay.TestSamples, trials int, missing string) InterHostNetworkStatus {
	c := InterHostNetworkStatus{SourceIP: src.IP, SourceName: src.HostName, SourceID: src.HostID,
		DestinationIP: dst.IP, DestinationName: dst.HostName, DestinationID: dst.HostID}
	if ts == nil {
		c.PacketsSent, c.PacketLoss, c.LossPercent, c.Error = trials, trials, 100, missing
		return c
	}
	recv := min(len(ts.RTTMs), ts.Sent)
	c.PacketsSent, c.PacketsReceive, c.PacketLoss = ts.Sent, recv, ts.Sent-recv
	c.LossPercent = 100
	if ts.Sent > 0 {
		c.LossPercent = math.Round(float64(ts.Sent-recv)/float64(ts.Sent)*1000) / 10
	}
	c.MinRTTMs, c.AvgRTTMs, c.MaxRTTMs, c.StddevRTTMs = rttStats(ts.RTTMs[:recv])
	c.MinimumRTT, c.AverageRTT, c.MaximumRTT, c.StddevRTT = c.MinRTTMs/1000, c.AvgRTTMs/1000, c.MaxRTTMs/1000, c.StddevRTTMs/1000
	c.Path, c.Measured = ts.Path, recv > 0
	if recv < ts.Sent {
		c.Error = ts.Error
	}
	return c
}

// buildMatrix fills every ordered pair of hosts (sorted by name) from the
// rows that arrived; a missing row, a row with an error or a destination
// the source did not measure gives a cell with loss 100 % and the reason.
func buildMatrix(hosts []TestHost, rows map[string]overlay.TestRow, trials int) ([]TestHost, []InterHostNetworkStatus) {
	hosts = append([]TestHost(nil), hosts...)
	sort.Slice(hosts, func(i, j int) bool { return hosts[i].HostName < hosts[j].HostName })
	cells := []InterHostNetworkStatus{}
	for i := range hosts {
		row, ok := rows[hosts[i].HostID]
		hosts[i].Reported = ok
		switch {
		case !ok:
			hosts[i].Error = "no row before the deadline (member down, unreachable, or not running this cbnode version)"
		case row.Error != "":
			hosts[i].Error = row.Error
		}
		for _, dst := range hosts {
			if dst.HostID == hosts[i].HostID {
				continue
			}
			var ts *overlay.TestSamples
			for k := range row.Targets {
				if row.Targets[k].To == dst.HostID {
					ts = &row.Targets[k]
				}
			}
			missing := hosts[i].Error
			if missing == "" {
				missing = "the source did not measure this destination (not in its members table, or no overlay address)"
			}
			cells = append(cells, pairStatus(hosts[i], dst, ts, trials, missing))
		}
	}
	return hosts, cells
}

// csvHeader is the first line of a test result as CSV.
var csvHeader = []string{"runId", "source", "sourceIP", "destination", "destinationIP", "sent", "received", "lossPercent",
	"minRttMs", "avgRttMs", "maxRttMs", "stddevRttMs", "relayed", "transport", "remote", "error"}

// writeCSV writes one line per ordered pair.
func writeCSV(w io.Writer, r *TestResult) error {
	cw := csv.NewWriter(w)
	_ = cw.Write(csvHeader)
	ms := func(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
	for _, c := range r.Results.InterHostNetworkStatus {
		_ = cw.Write([]string{r.RunID, c.SourceName, c.SourceIP, c.DestinationName, c.DestinationIP,
			strconv.Itoa(c.PacketsSent), strconv.Itoa(c.PacketsReceive), strconv.FormatFloat(c.LossPercent, 'f', 1, 64),
			ms(c.MinRTTMs), ms(c.AvgRTTMs), ms(c.MaxRTTMs), ms(c.StddevRTTMs),
			strconv.FormatBool(c.Path.Relayed), c.Path.Transport, c.Path.Remote, c.Error})
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write CSV: %w", err)
	}
	return nil
}

// WriteCSV writes r as CSV, one line per ordered pair (what the API
// answers for Accept: text/csv).
func WriteCSV(w io.Writer, r *TestResult) error { return writeCSV(w, r) }
