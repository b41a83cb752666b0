package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runApp runs the app in-process and returns what it wrote to stdout.
func runApp(t *testing.T, args ...string) (string, error) {
	t.Helper()
	app := newApp()
	var out bytes.Buffer
	app.Writer = &out
	err := app.Run(append([]string{"cbnode"}, args...))
	return out.String(), err
}

func TestCompletionScripts(t *testing.T) {
	for shell, want := range map[string][]string{
		"bash": {"complete -o bashdefault -o default -F _cbnode_complete cbnode", "--generate-bash-completion"},
		"zsh":  {"#compdef cbnode", "compdef _cbnode cbnode", "--generate-bash-completion"},
		"fish": {"complete -c cbnode", "-a 'join'", "__fish_seen_subcommand_from cladnet"},
	} {
		out, err := runApp(t, "completion", shell)
		if err != nil {
			t.Fatalf("completion %s: %v", shell, err)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("completion %s lacks %q:\n%s", shell, w, out)
			}
		}
	}
	if _, err := runApp(t, "completion", "tcsh"); err == nil || !strings.Contains(err.Error(), "want bash, zsh or fish") {
		t.Errorf("completion tcsh: %v", err)
	}
	if _, err := runApp(t, "completion"); err == nil {
		t.Error("completion without a shell accepted")
	}
}

func TestManPage(t *testing.T) {
	out, err := runApp(t, "man")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, ".nh\n.TH cbnode 1") || !strings.Contains(out, "bootstrap") || !strings.Contains(out, "--log-format") {
		t.Fatalf("man page: %.300q", out)
	}
	if _, err := exec.LookPath("man"); err != nil {
		return
	}
	cmd := exec.Command("man", "-l", "-")
	cmd.Stdin = strings.NewReader(out)
	cmd.Env = append(os.Environ(), "MANWIDTH=80", "MANPAGER=cat", "PAGER=cat")
	rendered, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(rendered), "NAME") || !strings.Contains(string(rendered), "cbnode - Cloud Adaptive Network node") {
		t.Errorf("man -l -: %v\n%s", err, rendered)
	}
}

// TestShellCompletion runs the built binary the way the scripts do, and the
// bash script itself where bash is installed.
func TestShellCompletion(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "cbnode")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v: %s", err, out)
	}
	env := append(os.Environ(), "CBNODE_API=127.0.0.1:1", "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	complete := func(args ...string) []string {
		t.Helper()
		cmd := exec.Command(bin, append(args, "--generate-bash-completion")...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("cbnode %s --generate-bash-completion: %v: %s", strings.Join(args, " "), err, out)
		}
		return strings.Fields(string(out))
	}
	has := func(list []string, want ...string) bool {
		for _, w := range want {
			found := false
			for _, l := range list {
				found = found || l == w
			}
			if !found {
				return false
			}
		}
		return true
	}
	if got := complete(); !has(got, "cladnet", "join", "bootstrap", "status", "completion", "man") {
		t.Errorf("top level: %q", got)
	}
	if got := complete("cladnet"); !has(got, "create", "issue", "show") || has(got, "join") {
		t.Errorf("cladnet: %q", got)
	}
	if got := complete("join", "--tok"); !has(got, "--token", "--token-file") || has(got, "--mtu") {
		t.Errorf("join --tok: %q", got)
	}
	// A positional word before the request must not make interspersed()
	// hide the request behind "--", which would run ping for real.
	if got := complete("ping", "vm2"); has(got, "cannot") {
		t.Errorf("ping vm2: %q", got)
	}

	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	script := `set -e
source <(cbnode completion bash)
complete -p cbnode
try() { COMP_WORDS=("$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); _cbnode_complete; echo "${COMPREPLY[*]}"; }
try cbnode cl
try cbnode cladnet iss
try cbnode join --token-
try cbnode boot
`
	cmd := exec.Command(bash, "--norc", "--noprofile", "-c", script)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	want := []string{"complete -o bashdefault -o default -F _cbnode_complete cbnode", "cladnet", "issue", "--token-file", "bootstrap"}
	if len(lines) != len(want) {
		t.Fatalf("bash completion:\n%s", out)
	}
	for i, w := range want {
		if lines[i] != w {
			t.Errorf("bash line %d: %q, want %q", i, lines[i], w)
		}
	}
}
