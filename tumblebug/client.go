package tumblebug

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// The client's error kinds; errors.Is finds them in what Client returns.
var (
	ErrUnreachable  = errors.New("tumblebug unreachable")
	ErrUnauthorized = errors.New("tumblebug refused the credentials")
	ErrNotFound     = errors.New("not found in tumblebug")
	ErrCommand      = errors.New("command failed on the node")
)

// Client speaks Tumblebug's REST API (basic auth, base path /tumblebug).
type Client struct {
	base       string // ".../tumblebug", no trailing slash
	user, pass string
	HTTP       *http.Client
}

// NewClient makes a client for the Tumblebug at rawURL (http://host:1323
// or http://host:1323/tumblebug); user and password may be empty when
// Tumblebug runs without TB_AUTH_ENABLED.
func NewClient(rawURL, user, password string) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(rawURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--tumblebug %q: give Tumblebug's URL, e.g. http://localhost:1323/tumblebug", rawURL)
	}
	if !strings.HasSuffix(u.Path, "/tumblebug") {
		u.Path += "/tumblebug"
	}
	// Remote commands and file transfers over SSH take a while; the
	// context bounds each call, this only catches a hung connection.
	return &Client{base: u.String(), user: user, pass: password, HTTP: &http.Client{Timeout: 15 * time.Minute}}, nil
}

// Base is the API's base URL (ending in /tumblebug).
func (c *Client) Base() string { return c.base }

// HTTPError is a non-2xx answer; its Message is Tumblebug's.
type HTTPError struct {
	Method, Path string
	Code         int
	Message      string
	kind         error
}

func (e *HTTPError) Error() string {
	msg := fmt.Sprintf("tumblebug %s %s: %d %s", e.Method, e.Path, e.Code, e.Message)
	switch e.Code {
	case http.StatusUnauthorized:
		msg += " (give --user and --password, or TB_API_USERNAME and TB_API_PASSWORD, as Tumblebug was started with)"
	case http.StatusNotFound:
		if e.Message == "Not Found" { // echo's answer for a route it does not have
			msg += " (no such route: a Tumblebug older than v0.12.6 names infras 'mci' and nodes 'vm'; cbnode speaks v0.12.6 to v0.13.x)"
		}
	}
	if errors.Is(e.kind, ErrNotFound) && e.Message != "Not Found" {
		msg += " (check --ns and --infra: GET /tumblebug/ns/{nsId}/infra lists the infras)"
	}
	return msg
}

func (e *HTTPError) Unwrap() error { return e.kind }

// CmdError is a command that failed on a node.
type CmdError struct {
	Node    string
	Command string
	Stdout  string
	Stderr  string
	Err     string
}

func (e *CmdError) Error() string {
	out := strings.TrimSpace(e.Stderr)
	if out == "" {
		out = strings.TrimSpace(e.Stdout)
	}
	out = lastLines(out, 3)
	cmd := e.Command
	if i := strings.IndexByte(cmd, '\n'); i >= 0 {
		cmd = cmd[:i] + " ..."
	}
	if len(cmd) > 120 {
		cmd = cmd[:120] + "..."
	}
	s := fmt.Sprintf("node %s: %s", e.Node, e.Err)
	if out != "" {
		s += ": " + strings.ReplaceAll(out, "\n", " | ")
	}
	return s + fmt.Sprintf(" (command: %s)", cmd)
}

func (e *CmdError) Unwrap() error { return ErrCommand }

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, ctype string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("tumblebug %s %s: %w", method, path, err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", "application/json")
	if c.user != "" || c.pass != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("tumblebug %s %s: %w", method, path, ctx.Err())
		}
		return fmt.Errorf("cannot reach Tumblebug at %s (is it running? --tumblebug gives its URL): %w: %v", c.base, ErrUnreachable, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("tumblebug %s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var m SimpleMsg
		if json.Unmarshal(b, &m) != nil || m.Message == "" {
			m.Message = strings.TrimSpace(string(b))
			if len(m.Message) > 300 {
				m.Message = m.Message[:300] + "..."
			}
		}
		e := &HTTPError{Method: method, Path: path, Code: resp.StatusCode, Message: m.Message}
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			e.kind = ErrUnauthorized
		case http.StatusNotFound:
			e.kind = ErrNotFound
		default:
			// Tumblebug answers a missing infra or vNet with 400 or 500
			// and "The infra X does not exist.".
			if strings.Contains(strings.ToLower(m.Message), "does not exist") {
				e.kind = ErrNotFound
			}
		}
		return e
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("tumblebug %s %s: answer is not the expected JSON (%v): %.200s", method, path, err, b)
		}
	}
	return nil
}

func (c *Client) getJSON(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, nil, "", out)
}

func (c *Client) postJSON(ctx context.Context, path string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, path, bytes.NewReader(b), "application/json", out)
}

func esc(s string) string { return url.PathEscape(s) }

// Readyz asks whether Tumblebug is ready (503 is an answer, not an error).
func (c *Client) Readyz(ctx context.Context) (Readyz, error) {
	var r Readyz
	err := c.getJSON(ctx, "/readyz", &r)
	var he *HTTPError
	if errors.As(err, &he) && he.Code == http.StatusServiceUnavailable {
		return Readyz{Ready: false, Message: he.Message}, nil
	}
	return r, err
}

// Infra reads one infra with its nodes.
func (c *Client) Infra(ctx context.Context, ns, infra string) (Infra, error) {
	var in Infra
	err := c.getJSON(ctx, "/ns/"+esc(ns)+"/infra/"+esc(infra), &in)
	return in, err
}

// VNet reads one vNet with its subnets.
func (c *Client) VNet(ctx context.Context, ns, id string) (VNet, error) {
	var v VNet
	err := c.getJSON(ctx, "/ns/"+esc(ns)+"/resources/vNet/"+esc(id), &v)
	return v, err
}

// SecurityGroup reads one security group with its rules.
func (c *Client) SecurityGroup(ctx context.Context, ns, id string) (SecurityGroup, error) {
	var sg SecurityGroup
	err := c.getJSON(ctx, "/ns/"+esc(ns)+"/resources/securityGroup/"+esc(id), &sg)
	return sg, err
}

// AddRules adds firewall rules to a security group (Tumblebug skips rules
// that already exist).
func (c *Client) AddRules(ctx context.Context, ns, id string, rules []FirewallRuleReq) (SecurityGroupUpdateResponse, error) {
	var out SecurityGroupUpdateResponse
	err := c.postJSON(ctx, "/ns/"+esc(ns)+"/resources/securityGroup/"+esc(id)+"/rules", SecurityGroupUpdateReq{FirewallRules: rules}, &out)
	if err == nil && !out.Success && out.Message != "" {
		err = fmt.Errorf("tumblebug: security group %s: rules not added: %s", id, out.Message)
	}
	return out, err
}

// Run runs one shell command on one node and returns its stdout. A
// command that fails on the node is a *CmdError (errors.Is ErrCommand).
func (c *Client) Run(ctx context.Context, ns, infra, node, command string) (string, error) {
	var out CmdResults
	path := "/ns/" + esc(ns) + "/cmd/infra/" + esc(infra) + "?nodeId=" + url.QueryEscape(node)
	if err := c.postJSON(ctx, path, CmdReq{Command: []string{command}}, &out); err != nil {
		return "", err
	}
	return resultOf(out, node, command)
}

// RunAll runs one shell command on every node of the infra at once
// (Tumblebug runs them in parallel) and returns each node's stdout or
// *CmdError, by node ID.
func (c *Client) RunAll(ctx context.Context, ns, infra, command string) (map[string]string, map[string]error, error) {
	var out CmdResults
	if err := c.postJSON(ctx, "/ns/"+esc(ns)+"/cmd/infra/"+esc(infra), CmdReq{Command: []string{command}}, &out); err != nil {
		return nil, nil, err
	}
	stdout, errs := map[string]string{}, map[string]error{}
	for _, r := range out.Results {
		if o, err := resultOf(CmdResults{Results: []CmdResult{r}}, r.NodeID, command); err != nil {
			errs[r.NodeID] = err
		} else {
			stdout[r.NodeID] = o
		}
	}
	return stdout, errs, nil
}

// TransferAndRun copies data to dir/name on one node (Tumblebug's
// transferFileAndCmd: scp, mode 0644 subject to the user's umask), then
// runs command there. The file's content never appears in a command line,
// so it stays out of Tumblebug's command history.
func (c *Client) TransferAndRun(ctx context.Context, ns, infra, node, dir, name string, data []byte, command string) (string, error) {
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	_ = w.WriteField("path", dir)
	if command != "" {
		_ = w.WriteField("command", command)
	}
	fw, err := w.CreateFormFile("file", name)
	if err != nil {
		return "", err
	}
	if _, err := fw.Write(data); err != nil {
		return "", err
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	var out FileCmdResults
	path := "/ns/" + esc(ns) + "/transferFileAndCmd/infra/" + esc(infra) + "?nodeId=" + url.QueryEscape(node)
	if err := c.do(ctx, http.MethodPost, path, &body, w.FormDataContentType(), &out); err != nil {
		return "", err
	}
	if _, err := resultOf(out.FileTransferResults, node, "transfer "+name+" to "+dir); err != nil {
		return "", err
	}
	if command == "" {
		return "", nil
	}
	if out.CmdResults == nil {
		return "", &CmdError{Node: node, Command: command, Err: "Tumblebug returned no command result"}
	}
	return resultOf(*out.CmdResults, node, command)
}

// resultOf picks node's result and turns a failure into a *CmdError.
func resultOf(out CmdResults, node, command string) (string, error) {
	for _, r := range out.Results {
		if r.NodeID != node {
			continue
		}
		stdout, stderr := joinOutput(r.Stdout), joinOutput(r.Stderr)
		if r.Error != "" {
			return stdout, &CmdError{Node: node, Command: command, Stdout: stdout, Stderr: stderr, Err: r.Error}
		}
		return stdout, nil
	}
	return "", &CmdError{Node: node, Command: command, Err: fmt.Sprintf("Tumblebug returned no result for node %s (is it in the infra?)", node)}
}

func joinOutput(m map[int]string) string {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(m[k])
	}
	return b.String()
}
