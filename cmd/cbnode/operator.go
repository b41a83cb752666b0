package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/operator"
	"github.com/cloud-barista/cbnode/overlay"
)

func operatorCommand() *cli.Command {
	return &cli.Command{
		Name:  "operator",
		Usage: "run the operator: the CLADNets of --dir behind cb-network's REST API",
		Description: `Holds the owner keys of the CLADNets in --dir and serves cb-network's
CLADNet API (GET/POST /v1/cladnet, GET/PUT/DELETE /v1/cladnet/{id},
POST /v1/cladnet/availableIPv4AddressSpaces, GET /v1/cladnet/{id}/peer[/{hostId}])
and cbnode's own (POST /v1/cladnet/{id}/token, GET/PUT /v1/cladnet/{id}/rules).
It joins the swarm through --bootstrap and takes part in each CLADNet's gossip
(no overlay IP, no TUN), so rules it signs reach the members within seconds.
Members do not depend on it: stopping it leaves the CLADNets running.

The API listens on 127.0.0.1:7480; on any other address --auth-file is
required (lines 'bearer TOKEN' or 'basic USER:PASSWORD'), and --tls-cert with
--tls-key serve HTTPS. Runs in the foreground (systemd-friendly).

` + exitCodesHelp,
		Flags: []cli.Flag{
			dirFlag,
			&cli.StringFlag{Name: "listen", Usage: "HTTP API address", Value: operator.DefaultAddr, EnvVars: []string{"CBNODE_OPERATOR_LISTEN"}},
			&cli.StringFlag{Name: "auth-file", Usage: "credentials file: lines 'bearer TOKEN' or 'basic USER:PASSWORD' (required beyond loopback)", EnvVars: []string{"CBNODE_OPERATOR_AUTH_FILE"}},
			&cli.StringFlag{Name: "tls-cert", Usage: "PEM certificate for HTTPS (with --tls-key)", EnvVars: []string{"CBNODE_OPERATOR_TLS_CERT"}},
			&cli.StringFlag{Name: "tls-key", Usage: "PEM key for HTTPS (with --tls-cert)", EnvVars: []string{"CBNODE_OPERATOR_TLS_KEY"}},
			&cli.StringSliceFlag{Name: "bootstrap", Usage: "bootstrap multiaddr with /p2p/ID (repeatable, or comma-separated in the env var); also put into the tokens it issues", EnvVars: []string{"CBNODE_BOOTSTRAP"}},
			&cli.StringSliceFlag{Name: "p2p-listen", Usage: "IP address the libp2p node listens on (repeatable)", Value: cli.NewStringSlice("0.0.0.0"), EnvVars: []string{"CBNODE_P2P_LISTEN"}},
			&cli.IntFlag{Name: "p2p-port", Usage: "libp2p TCP and UDP port; 0 picks one (the operator only dials out)", Value: 0, EnvVars: []string{"CBNODE_P2P_PORT"}},
			&cli.DurationFlag{Name: "token-ttl", Usage: "default validity of API-issued tokens", Value: operator.DefaultTokenTTL, EnvVars: []string{"CBNODE_TOKEN_TTL"}},
			&cli.DurationFlag{Name: "heartbeat", Usage: "with --missed-heartbeats: how long a member that went without a leave or death notice the operator heard must have been silent to show as lost rather than left", Value: overlay.DefaultHeartbeat, EnvVars: []string{"CBNODE_HEARTBEAT"}},
			&cli.IntFlag{Name: "missed-heartbeats", Usage: "see --heartbeat (the console shows a member lost when the members' failure detector declared it dead, left when it announced its leave)", Value: overlay.DefaultMissedHeartbeats, EnvVars: []string{"CBNODE_MISSED_HEARTBEATS"}},
			logLevelFlag, logFormatFlag,
		},
		Action: func(c *cli.Context) error {
			log, err := newLogger(c)
			if err != nil {
				return withCode(exitUsage, err)
			}
			if err := checkHostPort(c.String("listen")); err != nil {
				return withCode(exitUsage, fmt.Errorf("--listen %q: %w", c.String("listen"), err))
			}
			if c.Int("missed-heartbeats") < 1 || c.Duration("heartbeat") < 100*time.Millisecond {
				return withCode(exitUsage, errors.New("--heartbeat must be at least 100ms and --missed-heartbeats at least 1"))
			}
			err = operator.Run(c.Context, operator.Config{
				Dir: c.String("dir"), Listen: c.String("listen"), AuthFile: c.String("auth-file"),
				TLSCert: c.String("tls-cert"), TLSKey: c.String("tls-key"),
				Bootstrap: splitList(c.StringSlice("bootstrap")),
				ListenIPs: splitList(c.StringSlice("p2p-listen")), Port: c.Int("p2p-port"),
				TokenTTL: c.Duration("token-ttl"), Logger: log,
				Heartbeat: c.Duration("heartbeat"), MissedHeartbeats: c.Int("missed-heartbeats"),
			})
			var ce *operator.ConfigError
			if errors.As(err, &ce) {
				return withCode(exitUsage, err)
			}
			return err
		},
	}
}

// Flags of the operator's thin clients.
var (
	operatorURLFlag  = &cli.StringFlag{Name: "operator", Usage: "the operator's API URL", Value: "http://" + operator.DefaultAddr, EnvVars: []string{"CBNODE_OPERATOR"}}
	operatorAuthFlag = &cli.StringFlag{Name: "auth-file", Usage: "credentials file (its first 'bearer TOKEN' or 'basic USER:PASSWORD' line is sent); or set CBNODE_OPERATOR_TOKEN", EnvVars: []string{"CBNODE_OPERATOR_AUTH_FILE"}}
)

func operatorClientCommands() []*cli.Command {
	flags := []cli.Flag{operatorURLFlag, operatorAuthFlag}
	return []*cli.Command{
		{
			Name: "list", Usage: "list the operator's CLADNets (--operator URL)", Flags: append(flags, &cli.BoolFlag{Name: "json", Usage: "print the JSON answer"}),
			Action: func(c *cli.Context) error {
				cl, err := operatorClient(c)
				if err != nil {
					return err
				}
				var out operator.CLADNetSpecifications
				if err := opDo(cl, c.Context, http.MethodGet, "/v1/cladnet", nil, &out); err != nil {
					return err
				}
				if c.Bool("json") {
					return printJSON(out)
				}
				fmt.Printf("%-20s %-28s %-18s %-17s %s\n", "NAME", "ID", "RANGE", "RULE", "DESCRIPTION")
				for _, s := range out.CLADNetSpecifications {
					fmt.Printf("%-20s %-28s %-18s %-17s %s\n", s.Name, s.ID, s.IPv4AddressSpace, s.RuleType, s.Description)
				}
				return nil
			},
		},
		{
			Name: "get", Usage: "print one of the operator's CLADNets as JSON (--operator URL)", ArgsUsage: "NAME|ID", Flags: flags,
			Action: func(c *cli.Context) error {
				var out operator.CLADNetSpecification
				if err := onCladnet(c, http.MethodGet, &out); err != nil {
					return err
				}
				return printJSON(out)
			},
		},
		{
			Name: "delete", Usage: "delete one of the operator's CLADNets (its directory and owner key are archived)", ArgsUsage: "NAME|ID", Flags: flags,
			Action: func(c *cli.Context) error {
				var out operator.DeletionResult
				if err := onCladnet(c, http.MethodDelete, &out); err != nil {
					return err
				}
				fmt.Fprintln(os.Stderr, out.Message)
				return nil
			},
		},
	}
}

// operatorClient is an api.Client for --operator that sends the
// credentials of --auth-file or CBNODE_OPERATOR_TOKEN.
func operatorClient(c *cli.Context) (*api.Client, error) {
	u := c.String("operator")
	if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
		return nil, withCode(exitUsage, fmt.Errorf("--operator %q: give the operator's URL, e.g. http://%s", u, operator.DefaultAddr))
	}
	cl := api.NewClient(u)
	auth := ""
	if f := c.String("auth-file"); f != "" {
		a, err := firstCredential(f)
		if err != nil {
			return nil, withCode(exitUsage, err)
		}
		auth = a
	} else if tok := os.Getenv("CBNODE_OPERATOR_TOKEN"); tok != "" {
		auth = "Bearer " + tok
	}
	if auth != "" {
		cl.HTTP = &http.Client{Timeout: 15 * time.Second, Transport: authTransport{auth: auth, next: http.DefaultTransport}}
	}
	return cl, nil
}

// firstCredential turns the first credential line of an auth file into an
// Authorization header value.
func firstCredential(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--auth-file: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		kind, cred, _ := strings.Cut(line, " ")
		cred = strings.TrimSpace(cred)
		switch strings.ToLower(kind) {
		case "bearer":
			return "Bearer " + cred, nil
		case "basic":
			u, p, _ := strings.Cut(cred, ":")
			r, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "/", nil)
			r.SetBasicAuth(u, p)
			return r.Header.Get("Authorization"), nil
		}
		return "", fmt.Errorf("--auth-file %s: line %q: want 'bearer TOKEN' or 'basic USER:PASSWORD'", path, line)
	}
	return "", fmt.Errorf("--auth-file %s holds no credential", path)
}

// opDo is cl.Do with the operator named in the unreachable error.
func opDo(cl *api.Client, ctx context.Context, method, path string, in, out any) error {
	err := cl.Do(ctx, method, path, in, out)
	var ue *api.UnreachableError
	if errors.As(err, &ue) {
		return withCode(exitUnreachable, fmt.Errorf("cannot reach the operator at %s (is 'cbnode operator' running? --operator gives its URL): %v", ue.Base, ue.Err))
	}
	var se *api.StatusError
	if errors.As(err, &se) && se.Code == http.StatusUnauthorized {
		return withCode(exitCredential, fmt.Errorf("%v (give --auth-file or CBNODE_OPERATOR_TOKEN)", err))
	}
	return err
}

type authTransport struct {
	auth string
	next http.RoundTripper
}

func (t authTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", t.auth)
	return t.next.RoundTrip(r)
}

// onCladnet sends method to /v1/cladnet/{the NAME|ID argument} on the
// operator and decodes the answer into out.
func onCladnet(c *cli.Context, method string, out any) error {
	name, err := oneArg(c, "CLADNet NAME or ID")
	if err != nil {
		return err
	}
	cl, err := operatorClient(c)
	if err != nil {
		return err
	}
	return opDo(cl, c.Context, method, "/v1/cladnet/"+url.PathEscape(name), nil, out)
}
