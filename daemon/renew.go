package daemon

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/internal/atomicfile"
	"github.com/cloud-barista/cbnode/relay"
	"github.com/cloud-barista/cbnode/renew"
)

// certFile, in the CLADNet's state directory, holds the newest renewed
// certificate: a restart uses it instead of the token's, which may have
// expired meanwhile.
const certFile = "cert.json"

// renewedCert returns the certificate persisted in stateDir if it belongs
// to the same CLADNet, peer and host as the token's, is valid now and lasts
// longer; otherwise the token's.
func renewedCert(stateDir string, spec *cladnet.Spec, self peer.ID, tok *cladnet.Certificate, log *slog.Logger) *cladnet.Certificate {
	b, err := os.ReadFile(filepath.Join(stateDir, certFile))
	if err != nil {
		return tok
	}
	var c cladnet.Certificate
	if err := json.Unmarshal(b, &c); err != nil {
		log.Warn("ignoring the saved renewed certificate", "file", filepath.Join(stateDir, certFile), "err", err)
		return tok
	}
	if c.HostName != tok.HostName || !c.NotAfter.After(tok.NotAfter) {
		return tok // a new token (another host name, or newer)
	}
	if err := c.Verify(spec, self, time.Now()); err != nil {
		log.Debug("saved renewed certificate not usable", "err", err)
		return tok
	}
	log.Info("using the renewed certificate from the state directory", "host", c.HostName, "notAfter", c.NotAfter.Format(time.RFC3339))
	return &c
}

// RenewedCert is the certificate a member with state directory stateDir
// (Config.StateDir) starts with: a saved renewal of tok if there is a valid
// one, else tok itself.
func RenewedCert(stateDir string, spec *cladnet.Spec, self peer.ID, tok *cladnet.Certificate) *cladnet.Certificate {
	return renewedCert(filepath.Join(stateDir, spec.ID), spec, self, tok, slog.New(slog.DiscardHandler))
}

// cert is the certificate in use (the token's, or a renewal).
func (m *Member) cert() *cladnet.Certificate {
	if m.mem != nil {
		return m.mem.Cert()
	}
	return m.cfg.Token.Cert
}

// Renewer is the member's certificate renewer.
func (m *Member) Renewer() *renew.Renewer { return m.renewer }

// startRenewer renews the certificate through an operator of the CLADNet
// (found in the members table) at two thirds of its lifetime.
func (m *Member) startRenewer(cert *cladnet.Certificate) {
	m.renewer = renew.New(renew.Config{
		Spec: m.spec, Host: m.node.Host, Cert: cert, Logger: m.log,
		Operators: func() []peer.ID {
			var out []peer.ID
			for _, op := range m.mem.Operators() {
				out = append(out, op.ID)
			}
			return out
		},
		Apply: m.applyCert,
	})
	m.goFunc(m.renewer.Run)
}

// applyCert puts a renewed certificate in use: announcements, the relay
// certificate protocol, the IP claim; and saves it for the next start.
func (m *Member) applyCert(c *cladnet.Certificate) error {
	if err := m.mem.SetCert(c); err != nil {
		return err
	}
	relay.ServeCertTo(m.node.Host, c, m.certAsker)
	if err := m.alloc.SetCert(c); err != nil {
		return err
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(m.stateDir, certFile), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save the renewed certificate: %w", err)
	}
	return nil
}
