package api

import (
	"runtime/debug"
	"testing"
)

func TestResolveVersion(t *testing.T) {
	const rev = "a31681b0c2d4e6f8a0b2c4d6e8f0a2b4c6d8e0f2"
	vcs := func(modified string) []debug.BuildSetting {
		s := []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}}
		if modified != "" {
			s = append(s, debug.BuildSetting{Key: "vcs.modified", Value: modified})
		}
		return s
	}
	for _, c := range []struct {
		name   string
		linked string
		bi     *debug.BuildInfo
		ok     bool
		want   string
	}{
		{"linker wins", "v1.2.3", &debug.BuildInfo{Main: debug.Module{Version: "v9.9.9"}}, true, "v1.2.3"},
		{"no build info", "dev", nil, false, "dev"},
		{"go install @version", "dev", &debug.BuildInfo{Main: debug.Module{Version: "v0.4.1"}, Settings: vcs("true")}, true, "v0.4.1"},
		{"pseudo-version", "dev", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20260101120000-a31681b0c2d4+dirty"}}, true, "v0.0.0-20260101120000-a31681b0c2d4+dirty"},
		{"devel, clean checkout", "dev", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("false")}, true, "dev-a31681b0c2d4"},
		{"devel, modified checkout", "dev", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs("true")}, true, "dev-a31681b0c2d4-dirty"},
		{"devel, short revision", "dev", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}}}, true, "dev-abc"},
		{"devel, no vcs (-buildvcs=false)", "dev", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, true, "dev"},
		{"empty main version", "dev", &debug.BuildInfo{}, true, "dev"},
	} {
		if got := resolveVersion(c.linked, c.bi, c.ok); got != c.want {
			t.Errorf("%s: resolveVersion(%q, ...) = %q, want %q", c.name, c.linked, got, c.want)
		}
	}
}
