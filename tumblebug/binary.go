package tumblebug

import (
	"bytes"
	"debug/elf"
	"fmt"
)

// BinaryArch checks that b is a Linux executable and returns its
// architecture in Tumblebug's names (x86_64, arm64, ...).
func BinaryArch(b []byte) (string, error) {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return "", fmt.Errorf("--binary is not a Linux executable (%v): give a Linux build, e.g. bin/release/cbnode-linux-amd64 from 'make release'", err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return "", fmt.Errorf("--binary is an ELF %s, not an executable", f.Type)
	}
	switch f.Machine {
	case elf.EM_X86_64:
		return "x86_64", nil
	case elf.EM_AARCH64:
		return "arm64", nil
	case elf.EM_386:
		return "x86_32", nil
	case elf.EM_ARM:
		return "arm32", nil
	case elf.EM_S390:
		return "s390x", nil
	}
	return f.Machine.String(), nil
}

// CheckArch fails when the node's image names an architecture other than
// the binary's (an unknown one, "" or NA, passes).
func CheckArch(n Node, binArch string) error {
	a := n.Image.OSArchitecture
	switch a {
	case "", "NA":
		return nil
	case "x86_64_mac":
		a = "x86_64"
	case "arm64_mac":
		a = "arm64"
	}
	if a != binArch {
		return fmt.Errorf("node %s runs %s (%s), --binary is %s: give the %s build", n.ID, a, firstOf(n.Image.OSDistribution, "its image"), binArch, a)
	}
	return nil
}
