// Package forwardtest has fakes for testing code built on the forwarding
// core without root, TUN devices or libp2p: an in-memory packet device
// (Device), an in-memory network of engines (Net), and IPv4 packet
// builders. Modelled on wireguard-go's tun/tuntest.
//
// Files:
//
//	doc.go     this overview
//	device.go  Device: a channel-backed packet device
//	net.go     Net, Dialer, Stream: in-memory streams between handlers (engines) by peer ID,
//	           with dial failures and gated writes on demand
//	packet.go  IPv4Packet and its Src, Dst, Seq readers
//	leak.go    WaitGoroutines (goroutine leak check) and Eventually (polling assertion)
//
// A typical two-engine setup:
//
//	n := forwardtest.NewNet()
//	da, db := forwardtest.NewDevice("a0", 1400), forwardtest.NewDevice("b0", 1400)
//	ea := forward.New(da, n.Dialer("A"), forward.Options{})
//	eb := forward.New(db, n.Dialer("B"), forward.Options{})
//	n.Add("A", ea)
//	n.Add("B", eb)
//	// SetLocal, SetRoutes, go Run on both; da.Inject(pkt, time.Second); db.Recv(time.Second)
//	// ...; Close engines and devices, then n.Wait()
package forwardtest
