package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cloud-barista/cbnode/cladnet"
	"github.com/cloud-barista/cbnode/cost"
)

// Client talks to a node's local API.
type Client struct {
	Base string // e.g. http://127.0.0.1:7470
	HTTP *http.Client

	cladnetID string // this node's CLADNet, once known
}

// NewClient makes a client for addr ("host:port" or a URL).
func NewClient(addr string) *Client {
	base := addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &Client{Base: strings.TrimRight(base, "/"), HTTP: &http.Client{Timeout: 15 * time.Second}}
}

// UnreachableError: no answer from the API at all.
type UnreachableError struct {
	Base string
	Err  error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the cbnode API at %s (is 'cbnode join' running? --api gives its address): %v", e.Base, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// StatusError is an API answer with an error status; Msg is the server's
// one-line message.
type StatusError struct {
	Code int
	Msg  string
}

func (e *StatusError) Error() string { return e.Msg }

// Do sends a request and decodes the JSON answer into out (if non-nil).
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &UnreachableError{Base: c.Base, Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("read API answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		var e Error
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return &StatusError{Code: resp.StatusCode, Msg: e.Error}
		}
		return &StatusError{Code: resp.StatusCode, Msg: fmt.Sprintf("API %s %s: %s", method, path, resp.Status)}
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = append((*raw)[:0], b...)
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode API answer: %w", err)
	}
	return nil
}

// The typed calls below are the CLI's whole view of the API: route strings
// live here and in the server only. Calls on "this node's CLADNet" look its
// ID up once (GET /v1/status) and keep it.

// Status is GET /v1/status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.Do(ctx, http.MethodGet, "/v1/status", nil, &st)
	if err == nil && c.cladnetID == "" {
		c.cladnetID = st.CladnetID
	}
	return st, err
}

// cladnetPath is /v1/cladnet/{this node's CLADNet}.
func (c *Client) cladnetPath(ctx context.Context) (string, error) {
	if c.cladnetID == "" {
		if _, err := c.Status(ctx); err != nil {
			return "", err
		}
	}
	return "/v1/cladnet/" + url.PathEscape(c.cladnetID), nil
}

func (c *Client) getCladnet(ctx context.Context, suffix string, out any) error {
	p, err := c.cladnetPath(ctx)
	if err != nil {
		return err
	}
	return c.Do(ctx, http.MethodGet, p+suffix, nil, out)
}

// Peers lists the members as this node sees them.
func (c *Client) Peers(ctx context.Context) ([]Peer, error) {
	var ps Peers
	return ps.Peers, c.getCladnet(ctx, "/peer", &ps)
}

// PeersRaw is Peers' JSON as the node sent it: {"peers": [...]}.
func (c *Client) PeersRaw(ctx context.Context) (json.RawMessage, error) {
	var raw json.RawMessage
	return raw, c.getCladnet(ctx, "/peer", &raw)
}

// Peer finds one member by peer ID, host name or overlay IP.
func (c *Client) Peer(ctx context.Context, hostID string) (Peer, error) {
	var p Peer
	return p, c.getCladnet(ctx, "/peer/"+url.PathEscape(hostID), &p)
}

// SetDetails updates this node's cloud information: the fields set in ci
// change, the others are kept.
func (c *Client) SetDetails(ctx context.Context, hostID string, ci cost.CloudPatch) (Peer, error) {
	p, err := c.cladnetPath(ctx)
	if err != nil {
		return Peer{}, err
	}
	var out Peer
	err = c.Do(ctx, http.MethodPut, p+"/peer/"+url.PathEscape(hostID)+"/details", map[string]any{"cloudInformation": ci}, &out)
	return out, err
}

// Ping measures one round trip to a member over the data plane.
func (c *Client) Ping(ctx context.Context, target string) (PingResult, error) {
	var res PingResult
	return res, c.Do(ctx, http.MethodPost, "/v1/ping", map[string]string{"target": target}, &res)
}

// Rules returns the cost rules in force.
func (c *Client) Rules(ctx context.Context) (*cost.Rules, error) {
	var r cost.Rules
	if err := c.getCladnet(ctx, "/rules", &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// RulesRaw is the rules document as the node sent it.
func (c *Client) RulesRaw(ctx context.Context) (json.RawMessage, error) {
	var raw json.RawMessage
	return raw, c.getCladnet(ctx, "/rules", &raw)
}

// PushRules submits a signed rules document; the node applies and gossips it.
func (c *Client) PushRules(ctx context.Context, doc json.RawMessage) (*cost.Rules, error) {
	p, err := c.cladnetPath(ctx)
	if err != nil {
		return nil, err
	}
	var r cost.Rules
	if err := c.Do(ctx, http.MethodPut, p+"/rules", doc, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Revocation returns the CLADNet's revocation list in force (version 0 and
// no entries when nothing was revoked).
func (c *Client) Revocation(ctx context.Context) (*cladnet.Revocations, error) {
	var r cladnet.Revocations
	if err := c.getCladnet(ctx, "/revocation", &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// PushRevocation submits an owner-signed revocation list; the node applies
// it if newer and gossips it.
func (c *Client) PushRevocation(ctx context.Context, doc json.RawMessage) (*cladnet.Revocations, error) {
	p, err := c.cladnetPath(ctx)
	if err != nil {
		return nil, err
	}
	var r cladnet.Revocations
	if err := c.Do(ctx, http.MethodPut, p+"/revocation", doc, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Cost is the metered spend report.
func (c *Client) Cost(ctx context.Context) (cost.Report, error) {
	var rep cost.Report
	return rep, c.getCladnet(ctx, "/cost", &rep)
}

// NetworkingRule is the path table of node hostID (this node's API serves
// only its own).
func (c *Client) NetworkingRule(ctx context.Context, hostID string) (NetworkingRule, error) {
	var nr NetworkingRule
	return nr, c.getCladnet(ctx, "/peer/"+url.PathEscape(hostID)+"/networkingRule", &nr)
}

// Netcheck asks the node to check its connectivity now (it dials every
// bootstrap node and relay; this takes up to ~10 s).
func (c *Client) Netcheck(ctx context.Context) (Netcheck, error) {
	var nc Netcheck
	return nc, c.Do(ctx, http.MethodGet, "/v1/netcheck", nil, &nc)
}
