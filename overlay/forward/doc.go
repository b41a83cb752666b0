// Package forward is the forwarding core of the cbnode data plane.
//
// It moves IPv4 packets between the local packet device (the TUN interface
// cbnet0) and per-peer libp2p streams. The package is written against the
// small interfaces in iface.go so it can be unit tested without root, TUN
// devices or a libp2p host; the node layer adapts the real things.
//
// Data path, send side: one goroutine (Engine.Run) reads the device in
// batches (Device is batch-shaped like wireguard-go's tun.Device: one Read
// returns up to BatchSize packets) into pooled buffers with Headroom bytes
// in front, looks each destination up in an immutable routing snapshot
// held in an atomic.Pointer (plain map read: no lock, no allocation),
// writes the frame header in place and hands the buffer to the owning
// peer's bounded queue (a full queue drops and counts "queue_full"). Each
// peer has exactly one writer goroutine; it moves everything queued into
// a 256 KiB batch buffer and writes it to the peer's stream with a single
// Write, so N queued packets cost one write; frames of 16 KiB and more
// are written straight from their buffer, without that copy.
//
// Offloads: a device that implements Offloader (a Linux TUN with
// IFF_VNET_HDR) hands over TCP/UDP super-packets of up to 64 KiB with a
// virtio-net header in the headroom. Such a packet crosses the overlay as
// one FrameGSO frame; the receiver writes it whole, with a virtio-net
// header it builds itself, to its own offload device (the kernel cuts it
// into segments), or cuts it in software (gso.go) for a plain device, so
// mixed pairs interoperate. Partial checksums of plain packets are
// completed by the sender.
//
// Receive side: Engine.HandleStream runs one loop per inbound stream
// (bufio.Reader of 64 KiB, io.ReadFull into pooled buffers), validates
// every frame (length, IPv4 header, inner source address against the
// sending peer's overlay addresses — for super-packets too —, destination
// is this node's address or a subnet in Options.SubnetRoutes, then the
// optional packet filter in Options.Filter) and collects good packets into
// a batch, written with one Device.Write when it is full or when the next
// frame has not fully arrived.
//
// Liveness: keepalives are passive (a writer answers received data it has
// nothing to send back to with a Keepalive frame; idle pairs stay silent),
// writers reopen their stream when data they sent stayed unanswered for
// Options.DeadAfter, failed
// dials and writes are retried with exponential backoff, and Rehome moves
// a peer to a better connection without losing queued packets. Ping
// measures round trips with Probe/ProbeReply frames.
//
// Lazy tunnels (SetLazy, Options.Lazy; the node layer turns them on in
// CLADNets too large for a full mesh): a writer opens its stream only when
// it has something to send — a packet (the ones behind it wait in its
// queue), a probe, or an answer to data that arrived on the peer's stream —
// and closes it after Options.IdleTimeout without data either way, telling
// the Dialer (IdleCloser) so the connection underneath can go too. The
// packet that asked for a stream that cannot be opened is dropped
// ("dial_failed").
//
// Admin down (a CLADNet's DOWN command): SetAdminDown(true) drops every
// data packet both ways, counted per peer as "admin_down", while streams,
// keepalives and probes carry on, so SetAdminDown(false) restores traffic
// at once. The switch lives here rather than taking the TUN link down:
// the device, its address and the kernel's routes stay as they are (no
// privileged calls, nothing to restore), and it works on any Device.
//
// Wiring by the node layer (sketch):
//
//	e := forward.New(tun, dialer, forward.Options{})
//	e.SetLocal(myIP)
//	e.SetRoutes(routes) // again on every membership change
//	host.SetStreamHandler(forward.ProtocolID, func(s network.Stream) {
//		c := s.Conn()
//		e.HandleStream(c.RemotePeer(), s, forward.PathInfo{...})
//	})
//	go e.Run(ctx)
//	...
//	e.Close(); tun.Close()
//
// Layout (one concept per file, modelled on wireguard-go's device package):
//
//	doc.go     this overview
//	iface.go   Device (batch-shaped), Offloader, Headroom, Stream, Dialer, PathInfo, ProtocolID, IdleCloser
//	frame.go   wire format of the frame headers (4 bytes; 8 for FrameGSO) and IPv4 sanity checks
//	gso.go     virtio-net header, checksum completion, software segmentation of super-packets
//	pool.go    pooled packet buffers (MTU-sized and 64 KiB)
//	route.go   immutable routing snapshot swapped atomically
//	engine.go  Engine: batched TUN reader (send path) and stream receive loops with batched device writes
//	peer.go    per-peer queue and writer goroutine (batching, keepalive, reconnect, rehome, lazy park and idle close)
//	ping.go    Probe/ProbeReply round-trip measurement
//	stats.go   atomic counters and JSON-friendly snapshots
//	options.go tunables and defaults
//
// Tests run without root, TUN or libp2p on the fakes in forwardtest (an
// importable package, so the daemon's in-process tests share them):
//
//	forwardtest/       Device (batches, optional offloads), Net/Dialer/Stream, IPv4/TCP/UDP packet builders, Eventually, WaitGoroutines
//	internal/ipv4test  the IPv4 packet builder behind forwardtest's, also used by the internal tests
//	mesh_test.go       newMesh: running engines wired by a forwardtest.Net (package forward_test)
//	engine_test.go     end-to-end engine behaviour on a mesh (package forward_test)
//	lazy_test.go       lazy tunnels: no stream before a packet, queueing, idle close, the receiver's answer, failed dials
//	security_test.go   attacks by a member: foreign destinations, the filter hook (package forward_test)
//	bench_test.go      end-to-end and send-path benchmarks (package forward_test)
//	export_test.go     the few internals the forward_test tests need
//	frame_test.go      header, IPv4 checks, receive fuzzing, probes, zero-alloc send path (internal)
//	gso_test.go        segmentation, checksums, GSO validation, GSO receive fuzzing (internal)
//	batch_test.go      batched reads/writes, partial writes, super-packets between offload, plain and 1.0.0 peers, spoofed super-packets, failed in-place writes
//	route_test.go      routing decision benchmark (internal)
package forward
