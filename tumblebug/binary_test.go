package tumblebug

import (
	"os"
	"runtime"
	"strings"
	"testing"
)

func TestBinaryArch(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"amd64": "x86_64", "arm64": "arm64"}[runtime.GOARCH]
	if got, err := BinaryArch(b); err != nil || (want != "" && got != want) {
		t.Fatalf("BinaryArch(test binary) = %q, %v; want %q", got, err, want)
	}
	for _, bad := range [][]byte{nil, []byte("#!/bin/sh\necho hi\n"), []byte("\xcf\xfa\xed\xfe macho")} {
		if _, err := BinaryArch(bad); err == nil || !strings.Contains(err.Error(), "not a Linux executable") {
			t.Errorf("BinaryArch(%q) = %v", bad, err)
		}
	}
}

func TestCheckArch(t *testing.T) {
	for _, tc := range []struct {
		arch, bin string
		ok        bool
	}{
		{"", "x86_64", true}, {"NA", "arm64", true}, {"x86_64", "x86_64", true}, {"x86_64_mac", "x86_64", true},
		{"arm64", "x86_64", false}, {"x86_64", "arm64", false}, {"arm64_mac", "arm64", true},
	} {
		err := CheckArch(Node{ID: "g1-1", Image: Image{OSArchitecture: tc.arch, OSDistribution: "Ubuntu 22.04"}}, tc.bin)
		if (err == nil) != tc.ok {
			t.Errorf("CheckArch(%s, %s) = %v", tc.arch, tc.bin, err)
		}
		if err != nil && !strings.Contains(err.Error(), "node g1-1 runs "+tc.arch) {
			t.Errorf("message: %v", err)
		}
	}
}
