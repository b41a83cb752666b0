package cladnet

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TokenPrefix starts every join token, so a wrong blob is recognised at once.
const TokenPrefix = "cbnode-token-v1:"

// maxTokenLen bounds what DecodeToken will parse.
const maxTokenLen = 64 << 10

// Token is everything a VM needs to join a CLADNet: the spec, its certificate,
// the bootstrap addresses and (unless the node made its own key) its node key.
type Token struct {
	Spec      *Spec        `json:"spec"`
	Cert      *Certificate `json:"cert"`
	NodeKey   string       `json:"nodeKey,omitempty"` // base64 libp2p-marshalled private key
	Bootstrap []string     `json:"bootstrap,omitempty"`
}

// Encode renders the token as one line of text.
func (t *Token) Encode() (string, error) {
	b, err := json.Marshal(t)
	if err != nil {
		return "", fmt.Errorf("encode token: %w", err)
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// DecodeToken parses a token and checks that it is internally consistent
// (spec valid, certificate signed by the spec's owner, key matching the
// certificate). It does not check the validity window: see Token.Check.
func DecodeToken(s string) (*Token, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("join token is empty")
	}
	if len(s) > maxTokenLen {
		return nil, fmt.Errorf("join token is too long (%d bytes)", len(s))
	}
	if !strings.HasPrefix(s, TokenPrefix) {
		return nil, fmt.Errorf("not a cbnode join token (it should start with %q)", TokenPrefix)
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(s, TokenPrefix))
	if err != nil {
		return nil, fmt.Errorf("join token is garbled (truncated or edited?): %w", err)
	}
	var t Token
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, fmt.Errorf("join token is garbled: %w", err)
	}
	if t.Spec == nil || t.Cert == nil {
		return nil, errors.New("join token is incomplete: no CLADNet spec or certificate")
	}
	if err := t.Spec.Validate(); err != nil {
		return nil, fmt.Errorf("join token: %w", err)
	}
	if t.NodeKey != "" {
		k, err := t.PrivateKey()
		if err != nil {
			return nil, err
		}
		id, err := peer.IDFromPrivateKey(k)
		if err != nil {
			return nil, fmt.Errorf("join token: node key: %w", err)
		}
		if id.String() != t.Cert.PeerID {
			return nil, errors.New("join token: node key does not match the certificate's peer ID")
		}
	}
	return &t, nil
}

// PrivateKey decodes the node key carried by the token.
func (t *Token) PrivateKey() (crypto.PrivKey, error) {
	if t.NodeKey == "" {
		return nil, errors.New("join token carries no node key")
	}
	b, err := base64.StdEncoding.DecodeString(t.NodeKey)
	if err != nil {
		return nil, fmt.Errorf("join token: node key: %w", err)
	}
	k, err := crypto.UnmarshalPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("join token: node key: %w", err)
	}
	return k, nil
}

// SetPrivateKey stores k in the token.
func (t *Token) SetPrivateKey(k crypto.PrivKey) error {
	b, err := crypto.MarshalPrivateKey(k)
	if err != nil {
		return fmt.Errorf("marshal node key: %w", err)
	}
	t.NodeKey = base64.StdEncoding.EncodeToString(b)
	return nil
}
