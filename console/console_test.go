package console_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cloud-barista/cbnode/api"
	"github.com/cloud-barista/cbnode/console"
	"github.com/cloud-barista/cbnode/internal/browser"
)

// TestServe checks the routes: the page and its files with their types and
// a CSP that allows nothing but this origin, 404 for anything else.
func TestServe(t *testing.T) {
	mux := api.NewMux()
	console.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, c := range []struct {
		path, ctype string
		code        int
		has         string
	}{
		{"/", "text/html; charset=utf-8", 200, `<script src="/ui/app.js"`},
		{"/ui/index.html", "text/html; charset=utf-8", 200, "cbnode console"},
		{"/ui/style.css", "text/css; charset=utf-8", 200, "@media (max-width: 600px)"},
		{"/ui/logic.js", "text/javascript; charset=utf-8", 200, "CBLogic"},
		{"/ui/app.js", "text/javascript; charset=utf-8", 200, "/overview"},
		{"/ui/logic_test.js", "application/json", 404, "no console file"},
		{"/ui/..%2fconsole.go", "application/json", 404, "no console file"},
		{"/ui/nope.png", "application/json", 404, "no console file"},
	} {
		resp, err := http.Get(srv.URL + c.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.code || !strings.HasPrefix(resp.Header.Get("Content-Type"), c.ctype) || !strings.Contains(string(b), c.has) {
			t.Errorf("GET %s: %d %s %.80q, want %d %s containing %q", c.path, resp.StatusCode, resp.Header.Get("Content-Type"), b, c.code, c.ctype, c.has)
		}
		if c.code == 200 && resp.Header.Get("Content-Security-Policy") != console.CSP {
			t.Errorf("GET %s: CSP %q", c.path, resp.Header.Get("Content-Security-Policy"))
		}
	}
	// No external resource: nothing the page loads names another origin.
	for _, f := range []string{"index.html", "style.css", "logic.js", "app.js"} {
		b, err := os.ReadFile("web/" + f)
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{"http://", "https://", "//cdn", "@import", "url("} {
			if i := strings.Index(string(b), bad); i >= 0 && !strings.Contains(string(b[i:min(len(b), i+40)]), "www.w3.org/2000/svg") {
				t.Errorf("%s refers to an external resource: %q", f, b[i:min(len(b), i+60)])
			}
		}
	}
	if w := console.Weight(); w > 100<<10 {
		t.Errorf("page weight %d bytes: keep it under 100 KiB", w)
	}
}

// TestLogicJS runs logic_test.js (the unit tests of the page's pure
// functions: colour scale, sorting, filtering, formatting, layout) in
// headless Chromium.
func TestLogicJS(t *testing.T) {
	path := browser.Require(t)
	logic, err := os.ReadFile("web/logic.js")
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile("web/logic_test.js")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/logic.js":
			w.Header().Set("Content-Type", "text/javascript")
			_, _ = w.Write(logic)
		case "/logic_test.js":
			w.Header().Set("Content-Type", "text/javascript")
			_, _ = w.Write(tests)
		default:
			w.Header().Set("Content-Type", "text/html")
			_, _ = io.WriteString(w, `<!doctype html><title>logic tests</title><script src="/logic.js"></script><script src="/logic_test.js"></script>`)
		}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b := browser.Start(t, ctx, path, browser.Options{})
	type result struct {
		Count    int      `json:"count"`
		Failures []string `json:"failures"`
	}
	if err := chromedp.Do(b.Ctx, chromedp.Navigate(srv.URL)); err != nil {
		t.Fatal(err)
	}
	res, err := chromedp.Run(b.Ctx, chromedp.Evaluate[result](`CBLogicTests.run()`))
	if err != nil {
		t.Fatal(err)
	}
	if res.Count < 10 {
		t.Errorf("only %d JavaScript tests ran", res.Count)
	}
	for _, f := range res.Failures {
		t.Error("logic_test.js: " + f)
	}
	for _, e := range b.Errors() {
		t.Error("JavaScript error: " + e)
	}
	t.Logf("%d JavaScript tests, %d failures", res.Count, len(res.Failures))
}
