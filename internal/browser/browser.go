// Package browser runs headless Chromium for tests, driven over the
// DevTools protocol with chromedp: the console's JavaScript unit tests
// (package console) and its end-to-end browser test (package e2e). The
// browser gets no network beyond loopback — every request to another host
// goes to a dead proxy and every name resolves to nothing — and, with
// Options.Netns, runs inside a network namespace a test made. It collects
// the page's JavaScript errors (exceptions, console.error, and the
// browser's own error log: failed loads, CSP violations).
//
// Files:
//
//	browser.go  Require, Start, Browser: Errors, Screenshot
package browser

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// names are the executables tried, in order.
var names = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// Require returns Chromium's path. Without one the test is skipped, except
// under CI=true, where it fails (.ci/run installs Debian's chromium).
func Require(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("CBNODE_CHROMIUM"); p != "" {
		return p
	}
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("no Chromium (tried %s): install Debian's package (apt-get install chromium), as .ci/run does", strings.Join(names, ", "))
	}
	t.Skipf("no Chromium (tried %s): apt-get install chromium to run the browser tests", strings.Join(names, ", "))
	return ""
}

// Options configure Start.
type Options struct {
	// Netns, if set, is the named network namespace (ip netns) Chromium
	// runs in.
	Netns string
	// Width and Height are the window size (default 1400×900).
	Width, Height int
}

// Browser is one running Chromium with one tab.
type Browser struct {
	// Ctx is the tab's context for chromedp.Run and Do.
	Ctx    context.Context
	cancel func()
	mu     sync.Mutex
	errs   []string
}

// Start launches headless Chromium (path from Require) and opens a tab; the
// browser ends with the test (t.Cleanup) or with ctx.
func Start(t testing.TB, ctx context.Context, path string, opt Options) *Browser {
	t.Helper()
	if opt.Width == 0 {
		opt.Width, opt.Height = 1400, 900
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(filepath.Join(t.TempDir(), "chromium")),
		chromedp.WindowSize(opt.Width, opt.Height),
		chromedp.DisableGPU,
		// Nothing beyond loopback: other hosts go to a dead proxy (loopback
		// bypasses proxies), names resolve to nothing.
		chromedp.ProxyServer("http://127.0.0.1:9"),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
		// No WebRTC UDP around the proxy either.
		chromedp.Flag("force-webrtc-ip-handling-policy", "disable_non_proxied_udp"),
		chromedp.Flag("webrtc-ip-handling-policy", "disable_non_proxied_udp"),
		chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider,AutofillServerCommunication,CertificateTransparencyComponentUpdater"),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	if opt.Netns != "" {
		ns := opt.Netns
		opts = append(opts, chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			ip, err := exec.LookPath("ip")
			if err != nil {
				ip = "/usr/sbin/ip"
			}
			cmd.Args = append([]string{"ip", "netns", "exec", ns, cmd.Path}, cmd.Args[1:]...)
			cmd.Path = ip
		}))
	}
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	tctx, tcancel := chromedp.NewContext(actx)
	if err := chromedp.Do(tctx); err != nil { // start the browser, open the tab
		tcancel()
		acancel()
		t.Fatalf("start Chromium (%s): %v", path, err)
	}
	b := &Browser{Ctx: tctx}
	lctx, lcancel := context.WithCancel(tctx)
	messages := chromedp.Console(lctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException {
				b.addErr(fmt.Sprintf("%s at %s:%d: %s", m.Type, m.URL, m.Line+1, m.Text))
			}
		}
	}()
	b.cancel = func() {
		lcancel()
		wg.Wait()
		tcancel()
		acancel()
	}
	t.Cleanup(b.cancel)
	return b
}

func (b *Browser) addErr(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.errs = append(b.errs, s)
}

// Errors returns the JavaScript errors seen so far.
func (b *Browser) Errors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errs...)
}

// Screenshot resizes the viewport to width (its height fitting the page)
// and writes a full-page PNG to path.
func (b *Browser) Screenshot(path string, width int) error {
	if err := chromedp.Do(b.Ctx,
		chromedp.EmulateViewport(int64(width), 900),
		chromedp.Sleep(300*time.Millisecond), // let the layout settle
	); err != nil {
		return fmt.Errorf("screenshot at %d px: %w", width, err)
	}
	png, err := chromedp.Run(b.Ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return fmt.Errorf("screenshot at %d px: %w", width, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, png, 0o644)
}
