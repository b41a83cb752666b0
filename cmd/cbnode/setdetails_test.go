package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
)

// TestSetDetailsViaOperator: 'set-details --host H' sends cb-network's
// body to the operator, with only the flags given, and names the CLADNet
// when the operator holds one.
func TestSetDetailsViaOperator(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.EscapedPath()+" "+strings.TrimSpace(string(b)))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodGet {
			_, _ = io.WriteString(w, `{"cladnetSpecifications":[{"cladnetId":"cn1","name":"lab"}]}`)
			return
		}
		_, _ = io.WriteString(w, `{"hostId":"p","details":{"regionId":"r1"}}`)
	}))
	defer srv.Close()
	for _, v := range []string{"CBNODE_PROVIDER", "CBNODE_REGION", "CBNODE_ZONE", "CBNODE_VPC", "CBNODE_SUBNET_ID", "CBNODE_PRIVATE_IP", "CBNODE_PUBLIC_IP", "CBNODE_OPERATOR", "CBNODE_OPERATOR_AUTH_FILE", "CBNODE_OPERATOR_TOKEN"} {
		t.Setenv(v, "") // restored after the test
		os.Unsetenv(v)
	}
	app := newApp()
	args := []string{"cbnode", "set-details", "--host", "vm1", "--operator", srv.URL, "--region", "r1", "--subnet-id", ""}
	if err := app.Run(interspersed(app, args)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0] != "GET /v1/cladnet " || !strings.HasPrefix(got[1], "PUT /v1/cladnet/lab/peer/vm1/details ") {
		t.Fatalf("requests: %q", got)
	}
	var body map[string]map[string]any
	if err := json.Unmarshal([]byte(strings.TrimPrefix(got[1], "PUT /v1/cladnet/lab/peer/vm1/details ")), &body); err != nil {
		t.Fatal(err)
	}
	if ci := body["cloudInformation"]; len(ci) != 2 || ci["regionId"] != "r1" || ci["subnetId"] != "" {
		t.Errorf("body: %v", body)
	}
}
