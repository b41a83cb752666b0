package overlay

import (
	"context"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/node"
)

func introducedNode(t *testing.T, o, signer *cladnet.Owner, n *node.Node, host string) *Admission {
	t.Helper()
	cert, err := cladnet.SignCertificate(signer.Key, o.Spec, n.Host.ID(), host, nil, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	adm := NewAdmission()
	in := StartIntroducer(context.Background(), IntroducerConfig{Host: n.Host, Spec: o.Spec, Cert: func() *cladnet.Certificate { return cert }, Admission: adm})
	t.Cleanup(in.Close)
	return adm
}

// Two members that never met admit each other on connecting; an outsider
// — no certificate, or one the owner did not sign — is admitted by
// neither and reads no certificate.
func TestIntroduction(t *testing.T) {
	boot := startBootstrap(t)
	o, other := newOwner(t, "lab"), newOwner(t, "other")
	na, nb, nx := plainNode(t, boot), plainNode(t, boot), plainNode(t, boot)
	a := introducedNode(t, o, o, na, "a")
	b := introducedNode(t, o, o, nb, "b")
	x := introducedNode(t, o, other, nx, "x") // forged: signed by another owner
	connect(t, na, nb)
	connect(t, nx, na)
	connect(t, nx, nb)
	forwardtestEventually(t, 5*time.Second, func() bool { return a.Verified(nb.Host.ID()) && b.Verified(na.Host.ID()) })
	time.Sleep(300 * time.Millisecond)
	if a.Verified(nx.Host.ID()) || b.Verified(nx.Host.ID()) {
		t.Fatal("a forged certificate was admitted")
	}
	if x.Verified(na.Host.ID()) {
		t.Fatal("the forger learned a's certificate")
	}
	// A plain outsider asking outright gets the stream reset.
	out := plainNode(t, boot)
	connect(t, out, na)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := out.Host.NewStream(ctx, na.Host.ID(), introProtocol(o.Spec.ID))
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewEncoder(s).Encode(map[string]string{"peerId": out.Host.ID().String()})
	_ = s.CloseWrite()
	b2, _ := io.ReadAll(s)
	if len(b2) != 0 {
		t.Fatalf("outsider read %q", b2)
	}
	_ = s.Reset()
}
