package operator_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/internal/openapitest"
)

// TestOpenAPIOperator drives every route of the operator, success and error
// answers, and validates each against api/openapi.json, the document the
// member's local API follows too.
func TestOpenAPIOperator(t *testing.T) {
	doc := api.OpenAPI()
	chk := openapitest.New(t, doc, "operator")
	o := startOp(t, t.TempDir(), nil)
	chk.Routes(o.Routes())
	u := o.URL()

	do := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequestWithContext(t.Context(), method, u+path, rd)
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		code, b := chk.Do(http.DefaultClient, req)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return code, m
	}
	for _, c := range []struct {
		method, path, body string
		code               int
	}{
		{"GET", "/health", "", 200},
		{"GET", "/openapi.json", "", 200},
		{"GET", "/", "", 200},
		{"GET", "/ui/app.js", "", 200},
		{"GET", "/ui/style.css", "", 200},
		{"GET", "/ui/logic_test.js", "", 404},
		{"GET", "/v1/cladnet", "", 200},
		{"POST", "/v1/cladnet/availableIPv4AddressSpaces", `{"ipv4Cidrs":["192.168.1.0/24"]}`, 200},
		{"POST", "/v1/cladnet/availableIPv4AddressSpaces", `{"ipv4Cidrs":["nope"]}`, 400},
		{"POST", "/v1/cladnet", `{"name":"lab","ipv4AddressSpace":"10.77.0.0/24","description":"a lab"}`, 200},
		{"POST", "/v1/cladnet", `{"name":"auto","ipv4Cidrs":["10.0.0.0/8"],"hosts":5,"ruleType":"cost-prioritized"}`, 200},
		{"POST", "/v1/cladnet", `{"name":"lab","ipv4AddressSpace":"10.78.0.0/24"}`, 409},
		{"POST", "/v1/cladnet", `{"name":"b","ipv4AddressSpace":"10.300.0.0/24"}`, 400},
		{"GET", "/v1/cladnet", "", 200},
		{"GET", "/v1/cladnet/lab", "", 200},
		{"GET", "/v1/cladnet/nope", "", 404},
		{"PUT", "/v1/cladnet/lab", `{"ruleType":"cost-prioritized","description":"changed"}`, 200},
		{"PUT", "/v1/cladnet/lab", `{"ipv4AddressSpace":"10.99.0.0/24"}`, 400},
		{"PUT", "/v1/cladnet/nope", `{}`, 404},
		{"POST", "/v1/cladnet/lab/token", `{"hostName":"vm1","groups":["web"],"ttl":"1h"}`, 200},
		{"POST", "/v1/cladnet/lab/token", `{"hostName":"vm1"}`, 409},
		{"POST", "/v1/cladnet/lab/token", `{"hostName":"vm2","peerId":"nope"}`, 400},
		{"POST", "/v1/cladnet/nope/token", `{}`, 404},
		{"GET", "/v1/cladnet/lab/rules", "", 200},
		{"GET", "/v1/cladnet/nope/rules", "", 404},
		{"PUT", "/v1/cladnet/lab/rules", `{"ruleType":"basic","prices":{"providers":{"aws":{"internet":0.05}}}}`, 200},
		{"PUT", "/v1/cladnet/lab/rules", `{"ruleType":"fastest"}`, 400},
		{"PUT", "/v1/cladnet/lab/rules", `{"ruleType":"basic","filter":{"default":"deny","inbound":[{"name":"ssh","from":["group:admin"],"proto":"tcp","ports":["22"]}]}}`, 200},
		{"PUT", "/v1/cladnet/lab/rules", `{"ruleType":"basic","version":1}`, 409},
		{"GET", "/v1/cladnet/lab/peer", "", 200},
		{"GET", "/v1/cladnet/nope/peer", "", 404},
		{"GET", "/v1/cladnet/lab/peer/nobody", "", 404},
		{"PUT", "/v1/cladnet/lab/peer/vm1/details", `{"cloudInformation":{"providerName":"aws","regionId":"us-east-1"}}`, 502},
		{"PUT", "/v1/cladnet/lab/peer/nobody/details", `{"cloudInformation":{}}`, 404},
		{"GET", "/v1/cladnet/lab/peer/vm1/networkingRule", "", 502},
		{"GET", "/v1/cladnet/lab/peer/nobody/networkingRule", "", 404},
		{"GET", "/v1/cladnet/lab/overview", "", 200},
		{"GET", "/v1/cladnet/nope/overview", "", 404},
		{"POST", "/v1/test/cladnet/lab/type/CONNECTIVITY", `{"testSpec":"{\"trialCount\":2}"}`, 409},
		{"POST", "/v1/test/cladnet/lab/type/IPERF", "", 400},
		{"POST", "/v1/test/cladnet/nope/type/RTT", "", 404},
		{"GET", "/v1/test/cladnet/lab", "", 200},
		{"GET", "/v1/test/cladnet/nope", "", 404},
		{"GET", "/v1/test/cladnet/lab/run/nope", "", 404},
		{"GET", "/v1/control/cladnet/lab/command/DOWN", "", 200},
		{"POST", "/v1/control/cladnet/lab/command/UP", "", 200},
		{"GET", "/v1/control/cladnet/lab/command/ENABLE_ENCRYPTION", "", 400},
		{"POST", "/v1/control/cladnet/lab/command/REBOOT", "", 400},
		{"GET", "/v1/control/cladnet/nope/command/UP", "", 404},
		{"GET", "/v1/cladnet/lab/revocation", "", 200},
		{"GET", "/v1/cladnet/nope/revocation", "", 404},
		{"POST", "/v1/cladnet/lab/revocation", `{"hostName":"vm1","reason":"lost laptop"}`, 200},
		{"POST", "/v1/cladnet/lab/revocation", `{"hostName":"vm1"}`, 409},
		{"POST", "/v1/cladnet/lab/revocation", `{"hostName":"nobody"}`, 404},
		{"POST", "/v1/cladnet/lab/revocation", `{}`, 400},
		{"POST", "/v1/cladnet/nope/revocation", `{"hostName":"vm1"}`, 404},
		{"GET", "/v1/cladnet/lab/revocation", "", 200},
		{"GET", "/v1/cladnet/lab/overview?paths=all", "", 200}, // vm1 revoked, a revocation event
		{"DELETE", "/v1/cladnet/auto", "", 200},
		{"DELETE", "/v1/cladnet/auto", "", 404},
		{"GET", "/v1/nothing", "", 404},
		{"PATCH", "/v1/cladnet/lab", `{}`, 405},
	} {
		if code, m := do(c.method, c.path, c.body); code != c.code {
			t.Errorf("%s %s %s: %d %v, want %d", c.method, c.path, c.body, code, m, c.code)
		}
	}
	chk.Covered(o.Routes())

	// The operator serves the same document as the local API.
	resp, err := http.Get(u + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(b, doc) || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("GET /openapi.json on the operator: %s, %d bytes, not api/openapi.json", resp.Header.Get("Content-Type"), len(b))
	}
}
