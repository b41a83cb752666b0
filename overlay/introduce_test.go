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

func introducedNode(t *testing.T, o, signer *cladnet.Owner, n *node.Node, host string) (*Admission, *Introducer) {
	t.Helper()
	cert, err := cladnet.SignCertificate(signer.Key, o.Spec, n.Host.ID(), host, nil, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	adm := NewAdmission()
	in := StartIntroducer(context.Background(), IntroducerConfig{Host: n.Host, Spec: o.Spec, Cert: func() *cladnet.Certificate { return cert }, Admission: adm})
	t.Cleanup(in.Close)
	return adm, in
}

// Two members that never met admit each other when the one that dialled
// introduces itself; a node never introduces itself over a connection it
// did not dial; a forged certificate is admitted by nobody and learns
// nothing; a plain outsider asking outright gets the stream reset.
func TestIntroduction(t *testing.T) {
	o, other := newOwner(t, "lab"), newOwner(t, "other")
	na, nb, nx := plainNode(t, nil), plainNode(t, nil), plainNode(t, nil)
	a, ia := introducedNode(t, o, o, na, "a")
	b, _ := introducedNode(t, o, o, nb, "b")
	x, ix := introducedNode(t, o, other, nx, "x") // forged: signed by another owner
	connect(t, na, nb)
	connect(t, nx, na)
	ia.Introduce(nb.Host.ID())
	forwardtestEventually(t, 5*time.Second, func() bool { return a.Verified(nb.Host.ID()) && b.Verified(na.Host.ID()) })

	ia.Introduce(nx.Host.ID()) // nx dialled na: na shows nothing first
	ix.Introduce(na.Host.ID()) // the forger shows its certificate: refused
	time.Sleep(500 * time.Millisecond)
	if a.Verified(nx.Host.ID()) {
		t.Fatal("a forged certificate was admitted")
	}
	if x.Verified(na.Host.ID()) {
		t.Fatal("the forger learned a's certificate")
	}

	out := plainNode(t, nil)
	connect(t, out, na)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := out.Host.NewStream(ctx, na.Host.ID(), introProtocol(o.Spec.ID))
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewEncoder(s).Encode(map[string]string{"peerId": out.Host.ID().String()})
	_ = s.CloseWrite()
	got, _ := io.ReadAll(s)
	if len(got) != 0 {
		t.Fatalf("outsider read %q", got)
	}
	_ = s.Reset()
}
