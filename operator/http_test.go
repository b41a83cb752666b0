package operator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/cost"
	"github.com/cloud-barista/cbnode/operator"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startOp starts an operator on 127.0.0.1 (API and libp2p) over dir.
func startOp(t *testing.T, dir string, mod func(*operator.Config)) *operator.Operator {
	t.Helper()
	cfg := operator.Config{Dir: dir, Listen: "127.0.0.1:0", ListenIPs: []string{"127.0.0.1"}, Logger: quiet()}
	if mod != nil {
		mod(&cfg)
	}
	o, err := operator.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Stop)
	return o
}

// call sends a raw JSON body (as a cb-network client would) and decodes the
// answer into a generic map, so the test sees the exact keys.
func call(t *testing.T, method, url, body string, hdr ...string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s %s: answer is not a JSON object: %q", method, url, b)
	}
	return resp.StatusCode, m
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// hasKeys fails unless m has every key (exact case).
func hasKeys(t *testing.T, what string, m map[string]any, want ...string) {
	t.Helper()
	for _, k := range want {
		if _, ok := m[k]; !ok {
			t.Errorf("%s: no key %q in %v", what, k, keys(m))
		}
	}
}

func dirs(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestCBNetworkContract drives the operator with the request bodies of
// cb-network's swagger (v0.0.16: cladnetId, ipv4AddressSpace, ruleType,
// ipv4Cidrs) and Tumblebug's flow, and checks the answers' exact keys.
func TestCBNetworkContract(t *testing.T) {
	dir := t.TempDir()
	o := startOp(t, dir, nil)
	u := o.URL()

	code, m := call(t, "GET", u+"/health", "")
	if code != 200 || m["status"] != "healthy" {
		t.Errorf("health: %d %v", code, m)
	}
	code, m = call(t, "GET", u+"/v1/cladnet", "")
	if l, ok := m["cladnetSpecifications"].([]any); code != 200 || !ok || len(l) != 0 {
		t.Errorf("empty list: %d %v", code, m)
	}

	// Tumblebug: recommend from the VMs' subnets, then create with the
	// recommendation, cladnetId = name = the MCIS ID, no ruleType.
	code, m = call(t, "POST", u+"/v1/cladnet/availableIPv4AddressSpaces", `{"ipv4Cidrs":["192.168.1.0/24","10.0.1.0/24","172.31.0.0/20"]}`)
	if code != 200 {
		t.Fatalf("address spaces: %d %v", code, m)
	}
	hasKeys(t, "address spaces", m, "recommendedIpv4PrivateAddressSpace", "addressSpace10s", "addressSpace172s", "addressSpace192s")
	rec, _ := m["recommendedIpv4PrivateAddressSpace"].(string)
	if rec == "" || rec == "10.0.1.0/24" {
		t.Fatalf("recommended %q", rec)
	}
	code, m = call(t, "POST", u+"/v1/cladnet", `{"cladnetId":"mcis01","name":"mcis01","ipv4AddressSpace":"`+rec+`","description":"A cladnet for mcis01"}`)
	if code != 200 {
		t.Fatalf("create: %d %v", code, m)
	}
	hasKeys(t, "create", m, "cladnetId", "name", "ipv4AddressSpace", "description", "ruleType")
	if m["name"] != "mcis01" || m["ipv4AddressSpace"] != rec || m["ruleType"] != "basic" || m["description"] != "A cladnet for mcis01" {
		t.Errorf("created %v", m)
	}
	id, _ := m["cladnetId"].(string)

	code, m = call(t, "GET", u+"/v1/cladnet", "")
	l, _ := m["cladnetSpecifications"].([]any)
	if code != 200 || len(l) != 1 {
		t.Fatalf("list: %d %v", code, m)
	}
	hasKeys(t, "list entry", l[0].(map[string]any), "cladnetId", "name", "ipv4AddressSpace", "description", "ruleType")
	for _, key := range []string{"mcis01", id} {
		if code, m = call(t, "GET", u+"/v1/cladnet/"+key, ""); code != 200 || m["cladnetId"] != id {
			t.Errorf("get %s: %d %v", key, code, m)
		}
	}

	// Tumblebug's update: GET the spec, set ruleType, PUT the whole spec.
	_, got := call(t, "GET", u+"/v1/cladnet/mcis01", "")
	got["ruleType"] = "cost-prioritized"
	b, _ := json.Marshal(got)
	code, m = call(t, "PUT", u+"/v1/cladnet/mcis01", string(b))
	if code != 200 || m["ruleType"] != "cost-prioritized" || m["description"] != "A cladnet for mcis01" {
		t.Fatalf("update: %d %v", code, m)
	}
	ow, err := cladnet.Load(dir, "mcis01")
	if err != nil || ow.Spec.RuleType != "cost-prioritized" {
		t.Errorf("spec file after update: %v, %+v", err, ow)
	}
	code, m = call(t, "GET", u+"/v1/cladnet/mcis01/rules", "")
	if code != 200 || m["ruleType"] != "cost-prioritized" || m["signature"] == "" {
		t.Errorf("rules after update: %d %v", code, m)
	}
	// A spec PUT back unchanged round-trips.
	_, got = call(t, "GET", u+"/v1/cladnet/mcis01", "")
	b, _ = json.Marshal(got)
	if code, m = call(t, "PUT", u+"/v1/cladnet/mcis01", string(b)); code != 200 || m["ruleType"] != got["ruleType"] || m["cladnetId"] != got["cladnetId"] {
		t.Errorf("round trip: %d %v", code, m)
	}

	code, m = call(t, "GET", u+"/v1/cladnet/mcis01/peer", "")
	if p, ok := m["peers"].([]any); code != 200 || !ok || len(p) != 0 {
		t.Errorf("peers: %d %v", code, m)
	}

	// Bad input: the status, a JSON error, and nothing half-created.
	before := dirs(t, dir)
	for _, c := range []struct {
		method, path, body string
		code               int
		msg                string
	}{
		{"GET", "/v1/cladnet/nope", "", 404, "not held"},
		{"PUT", "/v1/cladnet/nope", `{"ruleType":"basic"}`, 404, "not held"},
		{"DELETE", "/v1/cladnet/nope", "", 404, "not held"},
		{"GET", "/v1/cladnet/nope/peer", "", 404, "not held"},
		{"GET", "/v1/cladnet/mcis01/peer/nobody", "", 404, "not a member"},
		{"POST", "/v1/cladnet", `{"name":"b","ipv4AddressSpace":"10.300.0.0/24"}`, 400, "not a CIDR"},
		{"POST", "/v1/cladnet", `{"name":"b","ipv4AddressSpace":"8.8.8.0/24"}`, 400, "not private"},
		{"POST", "/v1/cladnet", `{"name":"b","ipv4AddressSpace":"` + rec + `"}`, 409, "overlaps CLADNet mcis01"},
		{"POST", "/v1/cladnet", `{"name":"mcis01","ipv4AddressSpace":"10.99.0.0/24"}`, 409, "already exists"},
		{"POST", "/v1/cladnet", `{"name":"b","ipv4AddressSpace":"10.99.0.0/24","ruleType":"fastest"}`, 400, "ruleType"},
		{"POST", "/v1/cladnet", `{"name":"../x","ipv4AddressSpace":"10.99.0.0/24"}`, 400, "invalid CLADNet name"},
		{"POST", "/v1/cladnet", `{"ipv4AddressSpace":"10.99.0.0/24"}`, 400, "needs \"name\""},
		{"POST", "/v1/cladnet", `{"name":"b","ipv4AddressSpace":"10.99.0.0/24","colour":"red"}`, 400, "unknown field"},
		{"PUT", "/v1/cladnet/mcis01", `{"ipv4AddressSpace":"10.99.0.0/24"}`, 400, "cannot be changed"},
		{"PUT", "/v1/cladnet/mcis01", `{"ruleType":"fastest"}`, 400, "ruleType"},
		{"POST", "/v1/cladnet/mcis01/token", `{"hostName":"operator"}`, 400, "operator's own"},
		{"POST", "/v1/cladnet/mcis01/token", `{"hostName":"vm1","ttl":"soon"}`, 400, "ttl"},
		{"POST", "/v1/cladnet/mcis01/token", `{"hostName":"vm1","peerId":"nope"}`, 400, "not a peer ID"},
		{"PUT", "/v1/cladnet/mcis01/rules", `{"ruleType":"fastest"}`, 400, "rule type"},
		{"POST", "/v1/cladnet/availableIPv4AddressSpaces", `{"ipv4Cidrs":["nope"]}`, 400, ""},
		{"POST", "/v1/cladnet", `{"name":"b",`, 400, "JSON"},
		{"POST", "/v1/test/cladnet/nope/type/CONNECTIVITY", "", 404, "not held"},
		{"POST", "/v1/test/cladnet/mcis01/type/CONNECTIVITY", `{"testSpec":{"trialCount":-1}}`, 400, "trialCount"},
		{"POST", "/v1/test/cladnet/mcis01/type/CONNECTIVITY", `{"testSpec":{"trialCount":100000}}`, 400, "trialCount"},
		{"POST", "/v1/test/cladnet/mcis01/type/CONNECTIVITY", `{"testSpec":{"interval":"soon"}}`, 400, "interval"},
		{"POST", "/v1/test/cladnet/mcis01/type/CONNECTIVITY", `{"testSpec":`, 400, "JSON"},
		{"POST", "/v1/test/cladnet/mcis01/type/IPERF", "", 400, "CONNECTIVITY"},
		{"GET", "/v1/test/cladnet/mcis01/run/nope", "", 404, ""},
		{"GET", "/v1/control/cladnet/mcis01/command/SIDEWAYS", "", 400, "UP, DOWN"},
		{"GET", "/v1/control/cladnet/nope/command/UP", "", 404, "not held"},
		{"PUT", "/v1/cladnet/mcis01/peer/nobody/details", `{"cloudInformation":{"regionId":"x"}}`, 404, ""},
		{"PUT", "/v1/cladnet/mcis01/peer/nobody/details", `{"cloudInformation":`, 400, ""},
		{"GET", "/v1/cladnet/mcis01/peer/nobody/networkingRule", "", 404, ""},
		{"POST", "/v1/cladnet/mcis01/revocation", `{"hostName":"nobody"}`, 404, ""},
		{"POST", "/v1/cladnet/nope/token", `{"hostName":"vm1"}`, 404, "not held"},
		{"GET", "/v1/nothing", "", 404, "no such endpoint"},
		{"PATCH", "/v1/cladnet/mcis01", `{}`, 405, "not allowed"},
	} {
		code, m := call(t, c.method, u+c.path, c.body)
		msg, _ := m["error"].(string)
		if code != c.code || msg == "" || !strings.Contains(msg, c.msg) {
			t.Errorf("%s %s %s: %d %q, want %d containing %q", c.method, c.path, c.body, code, msg, c.code, c.msg)
		}
	}
	if after := dirs(t, dir); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("failed requests changed the directory: %v -> %v", before, after)
	}

	// Recommendation at create: an empty ipv4AddressSpace plus subnets
	// gives a range that overlaps neither them nor the other CLADNets.
	code, m = call(t, "POST", u+"/v1/cladnet", `{"name":"auto","ipv4Cidrs":["10.0.0.0/8"],"hosts":20}`)
	if code != 200 {
		t.Fatalf("create with recommendation: %d %v", code, m)
	}
	if s, _ := m["ipv4AddressSpace"].(string); strings.HasPrefix(s, "10.") || s == rec {
		t.Errorf("recommended %s overlaps the input or mcis01", s)
	}

	// cb-network's DeletionResult; the directory is archived, key and all.
	code, m = call(t, "DELETE", u+"/v1/cladnet/auto", "")
	if code != 200 || m["isSucceeded"] != true {
		t.Fatalf("delete: %d %v", code, m)
	}
	hasKeys(t, "delete", m, "isSucceeded", "message", "cladnetSpecification")
	arch, _ := m["archivedTo"].(string)
	if _, err := os.Stat(filepath.Join(arch, "owner.key")); err != nil {
		t.Errorf("archived owner key: %v", err)
	}
	if code, _ := call(t, "GET", u+"/v1/cladnet/auto", ""); code != 404 {
		t.Errorf("get after delete: %d", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "auto")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("deleted CLADNet still in DIR: %v", err)
	}
}

func TestIssueToken(t *testing.T) {
	dir := t.TempDir()
	o := startOp(t, dir, func(c *operator.Config) {
		c.Bootstrap = []string{"/ip4/127.0.0.1/tcp/1/p2p/12D3KooWHTzcB8ZHP4NvjxyAqdtbB18fLurjN4nKEDXZQ2DP4Ldd"}
	})
	u := o.URL()
	if code, m := call(t, "POST", u+"/v1/cladnet", `{"name":"lab","ipv4AddressSpace":"10.77.0.0/24"}`); code != 200 {
		t.Fatal(code, m)
	}
	code, m := call(t, "POST", u+"/v1/cladnet/lab/token", `{"hostName":"vm1","groups":["web"]}`)
	if code != 200 {
		t.Fatal(code, m)
	}
	hasKeys(t, "token", m, "token", "peerId", "notAfter", "hostName", "cladnetId")
	tok, err := cladnet.DecodeToken(m["token"].(string))
	if err != nil {
		t.Fatal(err)
	}
	left := time.Until(tok.Cert.NotAfter)
	if tok.Cert.HostName != "vm1" || tok.Cert.PeerID != m["peerId"] || tok.NodeKey == "" || len(tok.Bootstrap) != 1 ||
		left < 23*time.Hour || left > 24*time.Hour || len(tok.Cert.Groups) != 1 {
		t.Errorf("token: cert %+v, bootstrap %v, ttl left %s", tok.Cert, tok.Bootstrap, left)
	}
	// Unique host names (issued.json), unless replace.
	if code, m := call(t, "POST", u+"/v1/cladnet/lab/token", `{"hostName":"vm1"}`); code != 409 {
		t.Errorf("duplicate host: %d %v", code, m)
	}
	if code, m := call(t, "POST", u+"/v1/cladnet/lab/token", `{"hostName":"vm1","replace":true,"ttl":"90m"}`); code != 200 {
		t.Errorf("replace: %d %v", code, m)
	}
	// A node that made its own key: no key in the token.
	code, m = call(t, "POST", u+"/v1/cladnet/lab/token", `{"hostName":"vm2","peerId":"12D3KooWHTzcB8ZHP4NvjxyAqdtbB18fLurjN4nKEDXZQ2DP4Ldd"}`)
	if code != 200 {
		t.Fatal(code, m)
	}
	if tok, err := cladnet.DecodeToken(m["token"].(string)); err != nil || tok.NodeKey != "" || m["peerId"] != "12D3KooWHTzcB8ZHP4NvjxyAqdtbB18fLurjN4nKEDXZQ2DP4Ldd" {
		t.Errorf("peerId token: %v %+v", err, m)
	}
}

func TestPutRulesSigns(t *testing.T) {
	dir := t.TempDir()
	o := startOp(t, dir, nil)
	u := o.URL()
	if code, m := call(t, "POST", u+"/v1/cladnet", `{"name":"lab","ipv4AddressSpace":"10.77.0.0/24"}`); code != 200 {
		t.Fatal(code, m)
	}
	code, m := call(t, "PUT", u+"/v1/cladnet/lab/rules", `{"ruleType":"cost-prioritized","prices":{"providers":{"aws":{"internet":0.05}}}}`)
	if code != 200 {
		t.Fatal(code, m)
	}
	b, _ := json.Marshal(m)
	doc, err := cost.ParseRules(b)
	if err != nil {
		t.Fatal(err)
	}
	ow, _ := cladnet.Load(dir, "lab")
	pub, _ := ow.Spec.OwnerPublicKey()
	if err := doc.Verify(ow.Spec.ID, pub); err != nil || doc.RuleType != "cost-prioritized" {
		t.Errorf("signed rules: %v, %+v", err, doc)
	}
	if ow.Spec.RuleType != "cost-prioritized" {
		t.Errorf("spec rule type %s after rules PUT", ow.Spec.RuleType)
	}
	// Two PUTs within one second still make two newer versions.
	code, m2 := call(t, "PUT", u+"/v1/cladnet/lab/rules", `{"ruleType":"basic"}`)
	if code != 200 || m2["version"].(float64) <= m["version"].(float64) {
		t.Errorf("second rules PUT: %d %v", code, m2)
	}
	// An explicit older version is refused.
	if code, m := call(t, "PUT", u+"/v1/cladnet/lab/rules", `{"ruleType":"basic","version":1}`); code != 409 {
		t.Errorf("stale version: %d %v", code, m)
	}
	// A packet filter is signed with the rules; a bad one is refused.
	code, m3 := call(t, "PUT", u+"/v1/cladnet/lab/rules", `{"ruleType":"basic","filter":{"default":"deny","inbound":[{"from":["group:admin"],"proto":"tcp","ports":["22"]}]}}`)
	if code != 200 {
		t.Fatal(code, m3)
	}
	b, _ = json.Marshal(m3)
	if doc, err = cost.ParseRules(b); err != nil || doc.Verify(ow.Spec.ID, pub) != nil || doc.Filter == nil || doc.Filter.Inbound[0].Ports[0] != "22" {
		t.Errorf("signed filter: %v, %+v", err, doc)
	}
	if code, m := call(t, "PUT", u+"/v1/cladnet/lab/rules", `{"ruleType":"basic","filter":{"default":"drop"}}`); code != 400 || !strings.Contains(m["error"].(string), "default") {
		t.Errorf("bad filter: %d %v", code, m)
	}
}

func TestAuth(t *testing.T) {
	dir := t.TempDir()
	_, err := operator.Start(context.Background(), operator.Config{Dir: dir, Listen: "0.0.0.0:0", Logger: quiet()})
	var ce *operator.ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "--auth-file") {
		t.Fatalf("non-loopback without --auth-file: %v", err)
	}
	if d := dirs(t, dir); len(d) != 0 {
		t.Errorf("refused start left %v", d)
	}
	af := filepath.Join(t.TempDir(), "auth")
	if err := os.WriteFile(af, []byte("# operators\nbearer s3cret-token\nbasic admin:pa:ss\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := startOp(t, dir, func(c *operator.Config) { c.Listen, c.AuthFile = "0.0.0.0:0", af })
	u := strings.Replace(o.URL(), "0.0.0.0", "127.0.0.1", 1)
	u = strings.Replace(u, "[::]", "127.0.0.1", 1)

	req, _ := http.NewRequestWithContext(t.Context(), "GET", u+"/v1/cladnet", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || len(resp.Header.Values("WWW-Authenticate")) != 2 {
		t.Errorf("no credentials: %d, WWW-Authenticate %q", resp.StatusCode, resp.Header.Values("WWW-Authenticate"))
	}
	for _, c := range []struct {
		auth string
		code int
	}{
		{"Bearer wrong", 401},
		{"Bearer s3cret-token", 200},
		{"Bearer s3cret-token-and-more", 401},
		{basic("admin", "pa:ss"), 200},
		{basic("admin", "pass"), 401},
		{"Digest x", 401},
	} {
		code, m := call(t, "GET", u+"/v1/cladnet", "", "Authorization", c.auth)
		if code != c.code {
			t.Errorf("%q: %d %v, want %d", c.auth, code, m, c.code)
		}
		if code == 401 && !strings.Contains(m["error"].(string), "wrong credentials") {
			t.Errorf("%q: message %v", c.auth, m)
		}
	}
	if code, _ := call(t, "GET", u+"/health", ""); code != 200 {
		t.Errorf("health needs no credentials, got %d", code)
	}
	// The console's static files need none either (they hold no data; the
	// page sends the credentials with every API call).
	for _, p := range []string{"/", "/ui/app.js"} {
		resp, err := http.Get(u + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s without credentials: %d, want 200", p, resp.StatusCode)
		}
	}
	if code, _ := call(t, "GET", u+"/v1/cladnet/x/overview", ""); code != 401 {
		t.Errorf("overview without credentials: %d, want 401", code)
	}
	// Writes cross-origin from a browser are refused even with credentials.
	code, _ := call(t, "POST", u+"/v1/cladnet", `{"name":"x","ipv4AddressSpace":"10.9.0.0/24"}`,
		"Authorization", "Bearer s3cret-token", "Sec-Fetch-Site", "cross-site")
	if code != 403 {
		t.Errorf("cross-site write: %d", code)
	}
}

func basic(u, p string) string {
	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth(u, p)
	return r.Header.Get("Authorization")
}

func TestLoopbackGuard(t *testing.T) {
	o := startOp(t, t.TempDir(), nil)
	code, m := call(t, "GET", o.URL()+"/v1/cladnet", "", "Host", "evil.example")
	if code != 403 || !strings.Contains(m["error"].(string), "DNS rebinding") {
		t.Errorf("rebound Host: %d %v", code, m)
	}
	req, _ := http.NewRequestWithContext(t.Context(), "POST", o.URL()+"/v1/cladnet", bytes.NewReader([]byte(`{"name":"x"}`)))
	req.Header.Set("Content-Type", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 415 {
		t.Errorf("text/plain write: %d", resp.StatusCode)
	}
}
