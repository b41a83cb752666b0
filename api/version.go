package api

import "runtime/debug"

// Version is cbnode's version string. The linker sets it (make build and
// make release pass -X github.com/cloud-barista/cbnode/api.Version=...);
// otherwise it is taken from the build information: the module version for
// "go install github.com/cloud-barista/cbnode/cmd/cbnode@v1.2.3", else the
// VCS revision the binary was built from, else "dev".
var Version = "dev"

func init() {
	bi, ok := debug.ReadBuildInfo()
	Version = resolveVersion(Version, bi, ok)
}

// resolveVersion returns linked (Version as the linker left it) unless it
// is "dev", in which case it derives a version from bi (ok as returned by
// debug.ReadBuildInfo): Main.Version unless it is empty or "(devel)", else
// "dev-" and the first 12 digits of vcs.revision, with "-dirty" if
// vcs.modified, else "dev".
func resolveVersion(linked string, bi *debug.BuildInfo, ok bool) string {
	if linked != "dev" || !ok || bi == nil {
		return linked
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	var dirty bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return linked
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	v := "dev-" + rev
	if dirty {
		v += "-dirty"
	}
	return v
}
