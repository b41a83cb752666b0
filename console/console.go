// Package console is the operator's web console: one page at / (plain
// HTML, CSS, JavaScript and SVG, embedded in the binary, no external
// resources, no build step) that drives the operator's own API from the
// browser — CLADNets (list, create with an address-space recommendation,
// edit, dissolve, join tokens), members (status, cloud, paths, traffic,
// certificate expiry; lost members stay, greyed), the RTT heatmap and
// circular barplot of connectivity tests with their history and CSV, the
// cost panel, the event log, and control (UP/DOWN, revoke, push rules, each
// confirmed). It is served on the operator's listener, behind its
// credentials and browser guard.
//
// Files:
//
//	console.go        Register: the page and its assets, with a strict CSP
//	web/index.html    the page's skeleton
//	web/style.css     layout (1400 px and phone width)
//	web/logic.js      pure functions (colour scale, sorting, filtering,
//	                  formatting, the heatmap's matrix): unit-tested
//	web/app.js        the page: fetches, renders, live polling
//	web/logic_test.js the unit tests of logic.js (run in Chromium by
//	                  console_test.go; not served)
//
// page_test.go drives the whole page in Chromium against a fake operator
// (150 members); e2e/console_test.go against a real one in namespaces.
package console

import (
	"embed"
	"net/http"
	"path"

	"github.com/cloud-barista/cbnode/api"
)

//go:embed web/index.html web/style.css web/logic.js web/app.js
var files embed.FS

// CSP allows the page's own scripts, styles and API only.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"

var types = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
}

// Register adds GET / (the page) and GET /ui/{file} (its assets) to mux.
func Register(mux *api.Mux) {
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { serve(w, "index.html") })
	mux.HandleFunc("GET /ui/{file}", func(w http.ResponseWriter, r *http.Request) { serve(w, r.PathValue("file")) })
}

func serve(w http.ResponseWriter, name string) {
	b, err := files.ReadFile("web/" + name)
	ct, ok := types[path.Ext(name)]
	if err != nil || !ok {
		api.WriteError(w, http.StatusNotFound, errNotFound(name))
		return
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Security-Policy", CSP)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
}

type errNotFound string

func (e errNotFound) Error() string {
	return "no console file " + string(e) + " (the page is at /, its files are index.html, style.css, logic.js, app.js)"
}

// Weight is the total size in bytes of what a browser loads for the page.
func Weight() int {
	n := 0
	for _, f := range []string{"index.html", "style.css", "logic.js", "app.js"} {
		b, _ := files.ReadFile("web/" + f)
		n += len(b)
	}
	return n
}
