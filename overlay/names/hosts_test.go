package names

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cloud-barista/cbnode/overlay"
)

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

const machineHosts = "127.0.0.1\tlocalhost\n127.0.1.1\tvm1 vm1.example.com\n# a comment\n::1 localhost ip6-localhost\n"

func testEntries(t *testing.T) []Entry {
	tab := Build(testSpec, []overlay.Member{
		member(newPeer(t), "vm1", "10.77.0.11"),
		member(newPeer(t), "vm2", "10.77.0.12"),
		member(newPeer(t), "localhost", "10.77.0.13"),
	}, testNow)
	return tab.Entries(testNow)
}

func TestRewriteHosts(t *testing.T) {
	es := testEntries(t)
	block := "# cbnode Lab begin\n" +
		"10.77.0.13\tlocalhost.lab.cbnode localhost.cbnode\n" + // never a second localhost
		"10.77.0.11\tvm1.lab.cbnode vm1.cbnode\n" + // vm1 is the machine's own name above
		"10.77.0.12\tvm2.lab.cbnode vm2.cbnode vm2\n" +
		"# cbnode Lab end\n"
	cases := []struct {
		name    string
		old     string
		entries []Entry
		want    string
	}{
		{"added at the end", machineHosts, es, machineHosts + block},
		{"no final newline", strings.TrimSuffix(machineHosts, "\n"), es, machineHosts + block},
		{"empty file", "", es[2:], "# cbnode Lab begin\n10.77.0.12\tvm2.lab.cbnode vm2.cbnode vm2\n# cbnode Lab end\n"},
		{"replaces the old block where it was", machineHosts + "# cbnode Lab begin\n10.77.0.99\tvm9.lab.cbnode\n# cbnode Lab end\n10.0.0.5 db\n", es[2:],
			machineHosts + "10.0.0.5 db\n# cbnode Lab begin\n10.77.0.12\tvm2.lab.cbnode vm2.cbnode vm2\n# cbnode Lab end\n"},
		{"removed with no entries", machineHosts + block, nil, machineHosts},
		{"removed from the middle", "1.2.3.4 a\n" + block + "5.6.7.8 b\n", nil, "1.2.3.4 a\n5.6.7.8 b\n"},
		{"nothing to remove", machineHosts, nil, machineHosts},
		{"another CLADNet's block is kept", machineHosts + "# cbnode other begin\n10.88.0.2\tvm2.other.cbnode vm2.cbnode vm2\n# cbnode other end\n", es[2:],
			machineHosts + "# cbnode other begin\n10.88.0.2\tvm2.other.cbnode vm2.cbnode vm2\n# cbnode other end\n" +
				"# cbnode Lab begin\n10.77.0.12\tvm2.lab.cbnode\n# cbnode Lab end\n"},
		{"a cut-off block loses only its own lines", machineHosts + "# cbnode Lab begin\n10.77.0.99\tvm9.lab.cbnode vm9\n10.0.0.5 db\n", nil,
			machineHosts + "10.0.0.5 db\n"},
		{"two blocks (edited by hand) become one", block + "1.2.3.4 a\n" + block, es[2:],
			"1.2.3.4 a\n# cbnode Lab begin\n10.77.0.12\tvm2.lab.cbnode vm2.cbnode vm2\n# cbnode Lab end\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := string(RewriteHosts([]byte(tc.old), "Lab", "lab.cbnode", tc.entries))
			if got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
			if again := string(RewriteHosts([]byte(got), "Lab", "lab.cbnode", tc.entries)); again != got {
				t.Errorf("not idempotent: second rewrite\n%s", again)
			}
		})
	}
}

func TestWriteHostsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(path, []byte(machineHosts), 0o640); err != nil {
		t.Fatal(err)
	}
	ino := func() uint64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o640 {
			t.Errorf("mode %v, want 0640", fi.Mode().Perm())
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	before := ino()
	es := testEntries(t)
	changed, err := WriteHostsFile(path, "Lab", "lab.cbnode", es)
	if err != nil || !changed {
		t.Fatalf("first write: changed %v, %v", changed, err)
	}
	after := ino()
	if after == before {
		t.Error("the file was rewritten in place, not replaced")
	}
	b, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(b), machineHosts) || !strings.Contains(string(b), "10.77.0.12\tvm2.lab.cbnode vm2.cbnode vm2\n") {
		t.Errorf("file:\n%s", b)
	}
	if changed, err := WriteHostsFile(path, "Lab", "lab.cbnode", es); err != nil || changed {
		t.Errorf("same entries again: changed %v, %v", changed, err)
	}
	if ino() != after {
		t.Error("the same entries rewrote the file")
	}
	if changed, err := WriteHostsFile(path, "Lab", "lab.cbnode", nil); err != nil || !changed {
		t.Errorf("removal: changed %v, %v", changed, err)
	}
	if b, _ := os.ReadFile(path); string(b) != machineHosts {
		t.Errorf("after removal:\n%s", b)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".tmp-*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	// No file and nothing to write: nothing is created.
	missing := filepath.Join(t.TempDir(), "hosts")
	if changed, err := WriteHostsFile(missing, "Lab", "lab.cbnode", nil); err != nil || changed {
		t.Errorf("missing file, no entries: changed %v, %v", changed, err)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("created a hosts file with nothing in it")
	}
	// A directory where the file should be: the error names the file.
	if _, err := WriteHostsFile(t.TempDir(), "Lab", "lab.cbnode", es); err == nil || !strings.Contains(err.Error(), "hosts file") {
		t.Errorf("directory as hosts file: %v", err)
	}
}
