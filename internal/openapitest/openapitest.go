// Package openapitest holds cbnode's HTTP servers to api/openapi.json, the
// one OpenAPI document that describes both the member's local API and the
// operator's: every route a server registers is documented and tagged with
// that server, every operation tagged with it is registered, and every
// answer a test drives through the server (status, content type, body)
// validates against the document. It is for tests only.
//
// The check is stricter than OpenAPI's default: an object schema that lists
// properties is closed (additionalProperties: false) unless it says
// otherwise, so a field a handler emits but the document lacks fails too.
// Objects without properties (e.g. the OpenAPI document itself) stay open.
//
// Files:
//
//	openapitest.go  Checker: New, Routes, Do, Check, Covered
package openapitest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// Checker validates one server's routes and answers against the document.
type Checker struct {
	t      testing.TB
	doc    *openapi3.T
	router routers.Router
	tag    string
	// covered are the operations ("GET /v1/cladnet/{cladnetId}") with at
	// least one validated answer.
	covered map[string]bool
}

// Load parses and validates an OpenAPI document.
func Load(ctx context.Context, doc []byte) (*openapi3.T, error) {
	l := openapi3.NewLoader()
	d, err := l.LoadFromData(doc)
	if err != nil {
		return nil, fmt.Errorf("load OpenAPI document: %w", err)
	}
	if err := d.Validate(ctx); err != nil {
		return nil, fmt.Errorf("OpenAPI document is not valid: %w", err)
	}
	return d, nil
}

// New loads doc (it must be valid OpenAPI) for the server whose operations
// carry tag ("member" or "operator").
func New(t testing.TB, doc []byte, tag string) *Checker {
	t.Helper()
	d, err := Load(context.Background(), doc)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[*openapi3.Schema]bool{}
	for _, s := range d.Components.Schemas {
		closeObjects(s, seen)
	}
	for _, item := range d.Paths.Map() {
		for _, op := range item.Operations() {
			for _, r := range op.Responses.Map() {
				if r.Value == nil {
					continue
				}
				for _, mt := range r.Value.Content {
					closeObjects(mt.Schema, seen)
				}
			}
		}
	}
	r, err := legacy.NewRouter(d)
	if err != nil {
		t.Fatal(err)
	}
	return &Checker{t: t, doc: d, router: r, tag: tag, covered: map[string]bool{}}
}

// closeObjects sets additionalProperties: false on every object schema with
// properties that does not set additionalProperties itself.
func closeObjects(ref *openapi3.SchemaRef, seen map[*openapi3.Schema]bool) {
	if ref == nil || ref.Value == nil || seen[ref.Value] {
		return
	}
	s := ref.Value
	seen[s] = true
	if len(s.Properties) > 0 && s.AdditionalProperties.Has == nil && s.AdditionalProperties.Schema == nil {
		no := false
		s.AdditionalProperties.Has = &no
	}
	for _, p := range s.Properties {
		closeObjects(p, seen)
	}
	closeObjects(s.Items, seen)
	closeObjects(s.AdditionalProperties.Schema, seen)
	for _, l := range []openapi3.SchemaRefs{s.AllOf, s.AnyOf, s.OneOf} {
		for _, x := range l {
			closeObjects(x, seen)
		}
	}
}

// operation turns a ServeMux pattern ("GET /v1/cladnet/{cladnetId}", "GET
// /{$}") into the document's method and path.
func operation(pattern string) (method, path string, err error) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok || strings.HasPrefix(path, " ") || !strings.HasPrefix(path, "/") {
		return "", "", fmt.Errorf("route %q: register routes as \"METHOD /path\"", pattern)
	}
	path = strings.TrimSuffix(path, "{$}")
	if strings.Contains(path, "...}") {
		return "", "", fmt.Errorf("route %q: a {name...} wildcard has no OpenAPI equivalent", pattern)
	}
	return method, path, nil
}

// Routes checks the server's registered patterns against the document:
// each is documented and tagged with the server, and each operation tagged
// with the server is registered.
func (c *Checker) Routes(patterns []string) {
	c.t.Helper()
	if len(patterns) == 0 {
		c.t.Fatalf("%s: no routes registered", c.tag)
	}
	registered := map[string]bool{}
	for _, p := range patterns {
		method, path, err := operation(p)
		if err != nil {
			c.t.Error(err)
			continue
		}
		registered[method+" "+path] = true
		item := c.doc.Paths.Value(path)
		if item == nil || item.GetOperation(method) == nil {
			c.t.Errorf("%s route %q is not in api/openapi.json: document it (paths[%q].%s, with its responses and tag %q)", c.tag, p, path, strings.ToLower(method), c.tag)
			continue
		}
		if !slices.Contains(item.GetOperation(method).Tags, c.tag) {
			c.t.Errorf("%s route %q: its operation in api/openapi.json lacks the tag %q", c.tag, p, c.tag)
		}
	}
	for path, item := range c.doc.Paths.Map() {
		for method, op := range item.Operations() {
			if slices.Contains(op.Tags, c.tag) && !registered[method+" "+path] {
				c.t.Errorf("api/openapi.json tags %s %s %q, but the %s server does not register it", method, path, c.tag, c.tag)
			}
		}
	}
}

// Do sends req with client, validates the answer and returns its status
// and body.
func (c *Checker) Do(client *http.Client, req *http.Request) (int, []byte) {
	c.t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.Check(req, resp.StatusCode, resp.Header, body); err != nil {
		c.t.Error(err)
	}
	return resp.StatusCode, body
}

// Check validates one answer to req against the document. An answer on a
// path or method the document lacks (the mux's own 404 and 405) must be the
// Error body.
func (c *Checker) Check(req *http.Request, status int, header http.Header, body []byte) error {
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		if status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
			return fmt.Errorf("%s %s: %d for a route the document lacks (want 404 or 405)", req.Method, req.URL.Path, status)
		}
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			return fmt.Errorf("%s %s: %d: body is not JSON: %q", req.Method, req.URL.Path, status, body)
		}
		if err := c.doc.Components.Schemas["Error"].Value.VisitJSON(v); err != nil {
			return fmt.Errorf("%s %s: %d: not an Error body: %w", req.Method, req.URL.Path, status, err)
		}
		return nil
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 status,
		Header:                 header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	// One line per mismatch: where in the body, and why (not the schema).
	in.Options.WithCustomSchemaErrorFunc(func(e *openapi3.SchemaError) string {
		return fmt.Sprintf("at /%s: %s", strings.Join(e.JSONPointer(), "/"), e.Reason)
	})
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return fmt.Errorf("%s %s: answer %d does not match api/openapi.json: %w\nbody: %s", req.Method, req.URL.Path, status, err, trim(body))
	}
	c.covered[route.Method+" "+route.Path] = true
	return nil
}

func trim(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > 2000 {
		return string(b[:2000]) + "..."
	}
	return string(b)
}

// Covered fails for every pattern without a validated answer: a new route
// needs a request in the test that drives the server.
func (c *Checker) Covered(patterns []string) {
	c.t.Helper()
	var missing []string
	for _, p := range patterns {
		method, path, err := operation(p)
		if err == nil && !c.covered[method+" "+path] {
			missing = append(missing, p)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		c.t.Errorf("%s routes without a validated answer (add a request for each to the OpenAPI test): %s", c.tag, strings.Join(missing, ", "))
	}
}
