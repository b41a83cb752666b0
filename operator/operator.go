// Package operator is `cbnode operator`: a long-running service that holds
// the owner keys of the CLADNets in one directory and serves cb-network's
// CLADNet API over HTTP (create, list, get, update, delete, recommend
// address spaces, list peers, set a member's details, read any member's
// networking rule) plus cbnode's own routes (issue join tokens, sign
// rules, revoke nodes). It renews members' certificates over libp2p
// (package renew) unless they are revoked. It takes part in each CLADNet's gossip as a libp2p node of
// its own — membership with a certificate it signs for itself, no overlay
// IP, no TUN — so what it signs (rules) spreads to every member within
// seconds, and it reads the members table from the gossip. Nothing depends
// on it: members, IPAM and the data plane keep working while it is down.
//
// Files:
//
//	operator.go  this overview; Config, Operator: Start, Stop, Run
//	store.go     the CLADNets in DIR: load, create, update, archive
//	swarm.go     the libp2p node; per CLADNet membership, rules, control, revocations
//	revoke.go    revocation routes, token refusal for revoked nodes, renewal
//	             signer, dissolution
//	control.go   UP/DOWN: a signed control document spread by gossip
//	test.go      connectivity tests: the request, the rows members send
//	             on /cbnode/test-result/1.0.0, the kept runs
//	matrix.go    the RTT matrix: per-pair statistics, CSV
//	http.go      the HTTP routes
//	remote.go    the routes that reach one member: details, networkingRule
//	watch.go     what the console shows: gone members, paths, cost, events
//	             (GET .../overview); the page itself is package console
//	watchstore.go  the watch's state saved in DIR/<name>/console.json
//	types.go     the JSON bodies (cb-network's field names)
//	auth.go      the credentials file, bearer/basic check, listener policy
package operator

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/node"
	"github.com/cloud-barista/cbnode/overlay"
)

// DefaultAddr is where the operator's API listens by default.
const DefaultAddr = "127.0.0.1:7480"

// DefaultTokenTTL is the validity of a certificate issued through the API
// when the request names none: API-issued tokens are meant to be used at
// once.
const DefaultTokenTTL = 24 * time.Hour

// Config configures an operator. Dir is required; everything else has a
// default.
type Config struct {
	// Dir holds the CLADNets (one directory per CLADNet, as 'cbnode
	// cladnet create --dir' makes them) and the operator's node key
	// (Dir/.operator/node.key); deleted CLADNets move to Dir/.archive.
	Dir string
	// Listen is the HTTP API's address (default DefaultAddr). Beyond
	// loopback, AuthFile is required.
	Listen string
	// AuthFile lists the accepted credentials, one per line: "bearer
	// TOKEN" or "basic USER:PASSWORD" ('#' starts a comment).
	AuthFile string
	// TLSCert and TLSKey (PEM files, both or neither) serve HTTPS.
	TLSCert, TLSKey string

	// Bootstrap are the bootstrap multiaddrs (with /p2p/ID) the operator
	// joins the swarm through; they also go into the tokens it issues.
	Bootstrap []string
	// ListenIPs and Port are the libp2p node's (default 0.0.0.0, port 0:
	// the operator needs no fixed port, it dials out).
	ListenIPs []string
	Port      int

	// Heartbeat and MissedHeartbeats are the membership timing (defaults
	// of package overlay).
	Heartbeat        time.Duration
	MissedHeartbeats int
	// TokenTTL is the default validity of API-issued tokens (DefaultTokenTTL).
	TokenTTL time.Duration
	// MaxRenewTTL caps the lifetime of a renewed certificate (a renewal
	// keeps the lifetime the certificate was issued with;
	// DefaultMaxRenewTTL).
	MaxRenewTTL time.Duration

	Logger *slog.Logger
	// Ready, if set, is called by Run once the API listens.
	Ready func(*Operator)
}

// ConfigError is a Start failure caused by the configuration (a usage
// error for the CLI: fix the flags, do not restart).
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// Operator is a running operator: one handle for its HTTP server, its
// libp2p node and every CLADNet's membership and rules.
type Operator struct {
	cfg   Config
	log   *slog.Logger
	auth  *authenticator // nil: no credentials required
	boot  []peer.AddrInfo
	key   crypto.PrivKey
	node  *node.Node
	store *store
	addr  net.Addr
	tls   bool

	mu    sync.Mutex // serialises changes of the CLADNet set and its files
	swarm map[string]*cladnetSwarm
	// adm keeps the gossip of the operator's CLADNets to peers whose
	// certificate one of their memberships verified; gossipers holds
	// those memberships (*overlay.Membership → struct{}), read lock-free
	// by gossipsub's goroutines.
	adm       *overlay.Admission
	gossipers sync.Map

	runMu   sync.Mutex
	pending map[string]*pendingRun // connectivity test runs in progress, by run ID

	// base carries the caller's values for the node, memberships and
	// rules (each ends by its own Close); ctx, cancelled by Stop, ends the
	// HTTP server's goroutines, counted in wg.
	base     context.Context
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	done     chan struct{}
	failOnce sync.Once
	err      error
	stopOnce sync.Once
}

// Run starts the operator and serves until ctx ends or it fails, then
// stops it.
func Run(ctx context.Context, cfg Config) error {
	o, err := Start(ctx, cfg)
	if err != nil {
		return err
	}
	if cfg.Ready != nil {
		cfg.Ready(o)
	}
	select {
	case <-ctx.Done():
	case <-o.Done():
	}
	o.Stop()
	return o.Err()
}

// Start loads the CLADNets of cfg.Dir, joins the swarm, takes part in each
// CLADNet's gossip and starts the HTTP API. ctx carries values only: the
// operator's lifetime ends with Stop.
func Start(ctx context.Context, cfg Config) (_ *Operator, err error) {
	if cfg.Dir == "" {
		return nil, &ConfigError{errors.New("operator: no CLADNet directory (--dir)")}
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultAddr
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.MaxRenewTTL <= 0 {
		cfg.MaxRenewTTL = DefaultMaxRenewTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return nil, &ConfigError{errors.New("operator: --tls-cert and --tls-key go together (a PEM certificate and its key)")}
	}
	loopback, err := isLoopback(cfg.Listen)
	if err != nil {
		return nil, &ConfigError{err}
	}
	o := &Operator{cfg: cfg, log: cfg.Logger, swarm: map[string]*cladnetSwarm{}, done: make(chan struct{})}
	if cfg.AuthFile != "" {
		if o.auth, err = loadAuthFile(cfg.AuthFile); err != nil {
			return nil, &ConfigError{err}
		}
	} else if !loopback {
		return nil, &ConfigError{fmt.Errorf("operator: refusing to listen on %s without credentials: beyond loopback the API needs --auth-file (lines 'bearer TOKEN' or 'basic USER:PASSWORD'), and --tls-cert/--tls-key to keep them secret on the wire", cfg.Listen)}
	}
	var tlsCfg *tls.Config
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, &ConfigError{fmt.Errorf("operator: TLS certificate %s / key %s: %w", cfg.TLSCert, cfg.TLSKey, err)}
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		o.tls = true
	} else if !loopback {
		o.log.Warn("the operator API listens beyond loopback without TLS: credentials and tokens cross the network in clear (give --tls-cert and --tls-key)", "listen", cfg.Listen)
	}
	if o.boot, err = node.ParseBootstrap(cfg.Bootstrap); err != nil {
		return nil, &ConfigError{err}
	}
	if o.store, err = openStore(cfg.Dir); err != nil {
		return nil, err
	}
	o.base = context.WithoutCancel(ctx)
	o.ctx, o.cancel = context.WithCancel(o.base)
	defer func() {
		if err != nil {
			o.Stop()
		}
	}()
	if err := o.startSwarm(); err != nil {
		return nil, err
	}
	owners, err := o.store.list()
	if err != nil {
		return nil, err
	}
	for _, ow := range owners {
		if err := o.join(ow); err != nil {
			return nil, err
		}
	}
	if err := o.serve(loopback, tlsCfg); err != nil {
		return nil, err
	}
	o.log.Info("operator running", "api", o.URL(), "cladnets", len(owners), "peer", o.node.Host.ID(), "dir", cfg.Dir)
	return o, nil
}

// serve starts the HTTP server and the goroutine that owns it.
func (o *Operator) serve(loopback bool, tlsCfg *tls.Config) error {
	ln, err := net.Listen("tcp", o.cfg.Listen)
	if err != nil {
		return fmt.Errorf("operator API on %s: %w (another operator running? give --listen another address)", o.cfg.Listen, err)
	}
	h, err := o.handler(ln.Addr(), loopback)
	if err != nil {
		ln.Close()
		return err
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	o.addr = ln.Addr()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	o.wg.Add(2)
	go func() {
		defer o.wg.Done()
		err := srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		served <- err
	}()
	go func() {
		defer o.wg.Done()
		select {
		case <-o.ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = srv.Shutdown(sctx)
			cancel()
			<-served
		case err := <-served:
			o.fail(fmt.Errorf("operator API: %w", err))
		}
	}()
	return nil
}

// handler is the whole HTTP stack: credentials (if any), the browser guard
// (loopback: Host check, no cross-origin writes; beyond loopback: no
// cross-origin writes), JSON errors, the routes.
func (o *Operator) handler(la net.Addr, loopback bool) (http.Handler, error) {
	h := api.JSONErrors(o.routes())
	if loopback {
		g := api.NewGuard(nil)
		if err := g.Learn(la); err != nil {
			return nil, err
		}
		h = g.Wrap(h)
	} else {
		h = crossOriginGuard(h)
	}
	if o.auth != nil {
		h = o.auth.wrap(h)
	}
	return h, nil
}

func (o *Operator) fail(err error) {
	o.failOnce.Do(func() {
		o.err = err
		o.log.Error("operator failed", "err", err)
		close(o.done)
	})
}

// Done is closed when the operator fails (or is stopped).
func (o *Operator) Done() <-chan struct{} { return o.done }

// Err is the failure that closed Done, if any.
func (o *Operator) Err() error {
	select {
	case <-o.done:
		return o.err
	default:
		return nil
	}
}

// URL is the API's base URL (http or https, the address it listens on).
func (o *Operator) URL() string {
	if o.addr == nil {
		return ""
	}
	scheme := "http"
	if o.tls {
		scheme = "https"
	}
	return scheme + "://" + o.addr.String()
}

// PeerID is the operator's libp2p identity.
func (o *Operator) PeerID() peer.ID { return o.node.Host.ID() }

// AddrInfo is the operator's libp2p identity and listen addresses.
func (o *Operator) AddrInfo() peer.AddrInfo {
	return peer.AddrInfo{ID: o.node.Host.ID(), Addrs: o.node.Host.Addrs()}
}

// Stop leaves every CLADNet's gossip, closes the node and the HTTP server
// and waits for every goroutine. It is idempotent.
func (o *Operator) Stop() {
	o.stopOnce.Do(func() {
		if o.cancel != nil {
			o.cancel()
		}
		o.wg.Wait()
		o.mu.Lock()
		for name, s := range o.swarm {
			s.close()
			o.gossipers.Delete(s.mem)
			delete(o.swarm, name)
		}
		o.mu.Unlock()
		if o.node != nil {
			_ = o.node.Close()
		}
		o.failOnce.Do(func() { close(o.done) })
	})
}
