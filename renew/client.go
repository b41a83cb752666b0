package renew

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/cladnet"
)

// Backoff bounds between failed renewal attempts.
const (
	DefaultMinRetry = time.Second
	DefaultMaxRetry = time.Minute
)

// requestTimeout bounds one attempt at one operator.
const requestTimeout = 10 * time.Second

// Config configures a Renewer.
type Config struct {
	Spec *cladnet.Spec
	Host host.Host
	// Cert is the certificate in use at the start.
	Cert *cladnet.Certificate
	// Operators lists the operators to ask (the members table's operator
	// rows), in order of preference.
	Operators func() []peer.ID
	// Apply puts a renewed certificate in use everywhere (announcements,
	// relay, IP claim) and persists it; an error is logged and the
	// renewal retried.
	Apply func(*cladnet.Certificate) error
	// MinRetry and MaxRetry bound the backoff after a failed attempt
	// (DefaultMinRetry, DefaultMaxRetry).
	MinRetry, MaxRetry time.Duration
	Logger             *slog.Logger
}

// Renewer renews a member's certificate at two thirds of its lifetime,
// retrying with backoff until it expires.
type Renewer struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	cert     *cladnet.Certificate
	received time.Time // when cert was obtained (issued, or renewed)
	renewals int
	lastRTT  time.Duration
}

// New returns a Renewer; Run drives it.
func New(cfg Config) *Renewer {
	if cfg.MinRetry <= 0 {
		cfg.MinRetry = DefaultMinRetry
	}
	if cfg.MaxRetry < cfg.MinRetry {
		cfg.MaxRetry = max(DefaultMaxRetry, cfg.MinRetry)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	// A freshly signed certificate starts one minute before its issue
	// (clock skew); a renewed one keeps its first NotBefore, so a restart
	// with it renews at once, which is harmless.
	received := cfg.Cert.NotBefore.Add(time.Minute)
	if now := time.Now(); now.Before(received) {
		received = now
	}
	return &Renewer{cfg: cfg, log: log, cert: cfg.Cert, received: received}
}

// Cert is the certificate in use.
func (r *Renewer) Cert() *cladnet.Certificate {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cert
}

// Renewals counts the renewals applied; LastRTT is the round-trip time of
// the newest one.
func (r *Renewer) Renewals() (int, time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.renewals, r.lastRTT
}

// Due is when the current certificate is renewed: two thirds of the way
// from its receipt to its NotAfter.
func (r *Renewer) Due() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.received.Add(r.cert.NotAfter.Sub(r.received) * 2 / 3)
}

// Run renews until ctx ends, or until an operator says the node is revoked.
func (r *Renewer) Run(ctx context.Context) {
	retry := r.cfg.MinRetry
	for {
		wait := time.Until(r.Due())
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		err := r.once(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			retry = r.cfg.MinRetry
			continue
		}
		cert := r.Cert()
		var rf *Refusal
		if errors.As(err, &rf) && rf.Reason == ReasonRevoked {
			r.log.Warn("certificate not renewed: the operator says this node is revoked; it is cut off at expiry", "host", cert.HostName, "notAfter", cert.NotAfter.Format(time.RFC3339), "err", err)
			return
		}
		left := time.Until(cert.NotAfter)
		if left > 0 {
			r.log.Warn("cannot renew the certificate yet; retrying", "host", cert.HostName, "expiresIn", left.Round(time.Second), "retryIn", retry, "err", err)
		} else {
			r.log.Warn("certificate expired before it could be renewed: peers drop this node until an operator renews it or a new join token is used", "host", cert.HostName, "notAfter", cert.NotAfter.Format(time.RFC3339), "err", err)
		}
		t := time.NewTimer(retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		retry = min(retry*2, r.cfg.MaxRetry)
	}
}

// once asks each known operator in turn; the first new certificate wins.
func (r *Renewer) once(ctx context.Context) error {
	ops := r.cfg.Operators()
	if len(ops) == 0 {
		return errors.New("no operator in the members table (is 'cbnode operator' running and joined to this CLADNet?)")
	}
	old := r.Cert()
	var errs []error // one line in the end: every operator's answer
	for _, p := range ops {
		start := time.Now()
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		c, err := Request(rctx, r.cfg.Host, p, r.cfg.Spec, old)
		cancel()
		if err != nil {
			var rf *Refusal
			if errors.As(err, &rf) && rf.Reason == ReasonRevoked {
				return err
			}
			errs = append(errs, err)
			continue
		}
		rtt := time.Since(start)
		if !c.NotAfter.After(old.NotAfter) {
			errs = append(errs, fmt.Errorf("operator %s renewed until %s, not later than the current certificate", p, c.NotAfter.Format(time.RFC3339)))
			continue
		}
		if err := r.cfg.Apply(c); err != nil {
			return fmt.Errorf("apply the renewed certificate: %w", err)
		}
		r.mu.Lock()
		r.cert, r.received, r.lastRTT = c, time.Now(), rtt
		r.renewals++
		r.mu.Unlock()
		r.log.Info("certificate renewed", "host", c.HostName, "notAfter", c.NotAfter.Format(time.RFC3339), "operator", p, "rtt", rtt.Round(time.Microsecond))
		return nil
	}
	msg := errs[0].Error()
	for _, e := range errs[1:] {
		msg += "; " + e.Error()
	}
	return errors.New(msg)
}
