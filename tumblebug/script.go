package tumblebug

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/cloud-barista/cbnode/api"
)

// The shell commands deploy sends through Tumblebug. Each is one string
// run by the node user's shell: "R=<root>; S=$HOME/.cbnode-deploy; sudo
// sh -c '<script>' cbnode-deploy "$R" "$S"", so the script sees the
// install root as $1 and the staging directory (where file transfers
// land, 0700) as $2. Values from Tumblebug are checked by safeValue
// before they get here; none is a secret (tokens travel as files).

// Service managers.
const (
	ServiceSystemd    = "systemd"    // units in /etc/systemd/system, systemctl
	ServiceBackground = "background" // setsid + a pid file, for hosts without systemd
)

// Layout is where cbnode goes on a node and how it runs.
type Layout struct {
	// Root prefixes every install path ("" is /). The node's shell
	// expands it, so "$HOME/cbnode" works. Only with ServiceBackground.
	Root string
	// Sudo runs the privileged part ("sudo"; "" when the node user is root).
	Sudo string
	// Service is ServiceSystemd or ServiceBackground.
	Service string
	// Port is the members' libp2p port; BootstrapPort the bootstrap's.
	Port, BootstrapPort int
}

// Staging is the node user's directory for transferred files, as
// Tumblebug's transferFileAndCmd takes it ("~/" is the SSH user's home).
const Staging = "~/.cbnode-deploy"

// Paths on the node, relative to $1 (the root).
const (
	binPath       = "/usr/local/bin/cbnode"
	confDir       = "/etc/cbnode"
	stateDir      = "/var/lib/cbnode"
	bootStateDir  = "/var/lib/cbnode-bootstrap"
	unitPath      = "/etc/systemd/system/cbnode.service"
	bootUnitPath  = "/etc/systemd/system/cbnode-bootstrap.service"
	runDir        = "/run/cbnode"
	unitName      = "cbnode"
	bootUnitName  = "cbnode-bootstrap"
	stagingInHome = "$HOME/.cbnode-deploy"
)

// Check validates the layout.
func (l Layout) Check() error {
	switch l.Service {
	case ServiceSystemd:
		if l.Root != "" {
			return fmt.Errorf("--root %q works only with --service background (the systemd units name /usr/local/bin and /etc/cbnode)", l.Root)
		}
	case ServiceBackground:
	default:
		return fmt.Errorf("--service %q: want systemd or background", l.Service)
	}
	if strings.ContainsAny(l.Root, "\"`\\\n") {
		return fmt.Errorf("--root %q: no quotes, backslashes or backticks", l.Root)
	}
	if l.Sudo != "" && l.Sudo != "sudo" && l.Sudo != "sudo -n" {
		return fmt.Errorf("--sudo %q: want sudo, \"sudo -n\" or empty (the node user is root)", l.Sudo)
	}
	if l.Port <= 0 || l.Port > 65535 || l.BootstrapPort <= 0 || l.BootstrapPort > 65535 || l.Port == l.BootstrapPort {
		return fmt.Errorf("ports %d and %d: want two different ports in 1..65535", l.Port, l.BootstrapPort)
	}
	return nil
}

// wrap makes script a command line: root and staging as $1 and $2,
// privileged through sudo.
func (l Layout) wrap(script string) string {
	sh := "sh -c " + shq(script) + ` cbnode-deploy "$R" "$S"`
	if l.Sudo != "" {
		sh = l.Sudo + " " + sh
	}
	return fmt.Sprintf(`R="%s"; S="%s"; %s`, l.Root, stagingInHome, sh)
}

// shq single-quotes s for sh.
func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

const scriptHead = `set -e; R="$1"; S="$2"; B="$R` + binPath + `"; C="$R` + confDir + `"
`

// activeCheck prints "yes" if the unit (or background process) runs.
func (l Layout) activeCheck(unit string) string {
	if l.Service == ServiceSystemd {
		return fmt.Sprintf(`$(systemctl is-active --quiet %s && echo yes)`, unit)
	}
	return fmt.Sprintf(`$([ -f "$R%s/%s.pid" ] && kill -0 "$(cat "$R%s/%s.pid")" 2>/dev/null && echo yes)`, runDir, unit, runDir, unit)
}

// ProbeCommand reports what the node has (ParseProbe reads it). With
// prepare it also makes the staging directory (0700); without, it
// changes nothing (plan).
func (l Layout) ProbeCommand(prepare bool) string {
	var b strings.Builder
	if prepare {
		b.WriteString(`mkdir -p "$HOME/.cbnode-deploy" && chmod 0700 "$HOME/.cbnode-deploy"; `)
	}
	s := `R="$1"; B="$R` + binPath + `"; C="$R` + confDir + `"
h() { [ -f "$1" ] && sha256sum "$1" | cut -c1-64; true; }
echo "cbnode-deploy bin=$(h "$B")"
echo "cbnode-deploy env=$(h "$C/env")"
echo "cbnode-deploy unit=$(h "$R` + unitPath + `")"
echo "cbnode-deploy bootunit=$(h "$R` + bootUnitPath + `")"
echo "cbnode-deploy token=$([ -s "$C/token" ] && echo yes)"
echo "cbnode-deploy active=` + l.activeCheck(unitName) + `"
echo "cbnode-deploy bootactive=` + l.activeCheck(bootUnitName) + `"
echo "cbnode-deploy bootid=$([ -x "$B" ] && [ -d "$R` + bootStateDir + `" ] && "$B" key --state-dir "$R` + bootStateDir + `" 2>/dev/null)"
echo "cbnode-deploy status=$([ -x "$B" ] && "$B" status --json 2>/dev/null | tr -d '\n')"
`
	b.WriteString(l.wrap(s))
	return b.String()
}

// statusFields reads the CLADNet ID, overlay IP and peer ID from 'cbnode status
// --json'.
func statusFields(v string) (cladnetID, ip, peerID string) {
	var st api.Status
	if json.Unmarshal([]byte(v), &st) != nil {
		return "", "", ""
	}
	return st.CladnetID, st.IP, st.PeerID
}

// install moves a transferred file from the staging directory into place.
func install(name, dest, mode string) string {
	return fmt.Sprintf(`install -d -m 0755 "$(dirname "%s")"; rc=0; install -m %s "$S/%s" "%s" || rc=$?; rm -f "$S/%s"; [ $rc = 0 ]`, dest, mode, name, dest, name)
}

// InstallBinaryCommand installs the transferred "cbnode" binary.
func (l Layout) InstallBinaryCommand() string {
	return l.wrap(scriptHead + install("cbnode", "$B", "0755") + "\n")
}

// WriteUnitCommand installs the transferred unit files and reloads systemd.
func (l Layout) WriteUnitCommand(bootstrap bool) string {
	s := scriptHead + install("cbnode.service", "$R"+unitPath, "0644") + "\n"
	if bootstrap {
		s += install("cbnode-bootstrap.service", "$R"+bootUnitPath, "0644") + "\n"
	}
	return l.wrap(s + "systemctl daemon-reload\n")
}

// WriteEnvCommand installs the transferred env file (0600, /etc/cbnode 0700).
func (l Layout) WriteEnvCommand() string {
	return l.wrap(scriptHead + `install -d -m 0700 "$C"` + "\n" + install("env", "$C/env", "0600") + "\n")
}

// KeyCommand prints the peer ID of the node's key in dir (made on first
// use: the private key never leaves the node).
func (l Layout) KeyCommand(bootstrap bool) string {
	dir := stateDir
	if bootstrap {
		dir = bootStateDir
	}
	return l.wrap(scriptHead + fmt.Sprintf(`install -d -m 0700 "$R%s"; echo "cbnode-deploy peer=$("$B" key --state-dir "$R%s")"`, dir, dir) + "\n")
}

// WriteTokenCommand installs the transferred token (0600) and removes the
// staged copy whatever happens.
func (l Layout) WriteTokenCommand() string {
	return l.wrap(scriptHead + `install -d -m 0700 "$C"` + "\n" + install("token", "$C/token", "0600") + "\n")
}

// StartCommand (re)starts the member and checks it still runs a moment
// later (a bad token or flag ends it within a second: its log then
// explains why).
func (l Layout) StartCommand() string {
	if l.Service == ServiceSystemd {
		return l.wrap(scriptHead + `systemctl enable --quiet cbnode; systemctl restart cbnode || { journalctl -u cbnode -n 15 --no-pager; exit 1; }
sleep 2; systemctl is-active --quiet cbnode || { journalctl -u cbnode -n 15 --no-pager; exit 1; }
`)
	}
	return l.wrap(scriptHead + background(unitName,
		`set -a; . "$C/env"; set +a; export CBNODE_TOKEN_FILE="$C/token" CBNODE_STATE_DIR="$R`+stateDir+`"`,
		`"$B" join "$CBNODE_CLADNET"`))
}

// StartBootstrapCommand (re)starts the bootstrap node, announcing ip.
func (l Layout) StartBootstrapCommand(ip, ownerKey string) string {
	if l.Service == ServiceSystemd {
		return l.wrap(scriptHead + `systemctl enable --quiet cbnode-bootstrap; systemctl restart cbnode-bootstrap || { journalctl -u cbnode-bootstrap -n 15 --no-pager; exit 1; }
sleep 2; systemctl is-active --quiet cbnode-bootstrap || { journalctl -u cbnode-bootstrap -n 15 --no-pager; exit 1; }
`)
	}
	return l.wrap(scriptHead + background(bootUnitName, "true", `"$B" `+strings.Join(l.bootstrapArgs(ip, ownerKey, "$R"+bootStateDir), " ")))
}

func (l Layout) bootstrapArgs(ip, ownerKey, state string) []string {
	args := []string{"bootstrap", `--state-dir "` + state + `"`, fmt.Sprintf("--port %d", l.BootstrapPort), "--announce " + ip}
	if ownerKey != "" {
		args = append(args, "--relay", "--cladnet-owner "+ownerKey)
	}
	return args
}

// background stops the previous process of name (its pid file), then
// starts cmd in its own session with its output in name.log.
func background(name, env, cmd string) string {
	return fmt.Sprintf(`P="$R%[1]s"; install -d -m 0700 "$P"
if [ -f "$P/%[2]s.pid" ]; then o=$(cat "$P/%[2]s.pid"); kill "$o" 2>/dev/null || true; i=0; while kill -0 "$o" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; fi
%[3]s
setsid %[4]s >>"$P/%[2]s.log" 2>&1 </dev/null &
echo $! >"$P/%[2]s.pid"
sleep 2
kill -0 "$(cat "$P/%[2]s.pid")" 2>/dev/null || { echo "%[2]s exited:" >&2; tail -n 15 "$P/%[2]s.log" >&2; exit 1; }
`, runDir, name, env, cmd)
}

// Unit is the member's systemd unit: examples/cbnode.service as is.
// BootstrapUnit is the bootstrap node's.
func (l Layout) BootstrapUnit(ip, ownerKey string) string {
	return fmt.Sprintf(`# /etc/systemd/system/cbnode-bootstrap.service, written by 'cbnode tumblebug deploy'.
[Unit]
Description=cbnode bootstrap node
After=network-online.target
Wants=network-online.target

[Service]
Type=exec
ExecStart=/usr/local/bin/cbnode %s
Restart=on-failure
RestartSec=3
DynamicUser=yes
StateDirectory=cbnode-bootstrap
StateDirectoryMode=0700
UMask=0077
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_NETLINK AF_UNIX

[Install]
WantedBy=multi-user.target
`, strings.ReplaceAll(strings.Join(l.bootstrapArgs(ip, ownerKey, bootStateDir), " "), `"`, ""))
}

// ReportCommand prints the member's status and networking rule as JSON
// lines (for the wait and the final table).
func (l Layout) ReportCommand() string {
	return l.wrap(`R="$1"; B="$R` + binPath + `"
echo "cbnode-deploy status=$("$B" status --json 2>/dev/null | tr -d '\n')"
echo "cbnode-deploy rule=$("$B" networking-rule --json 2>/dev/null | tr -d '\n')"
`)
}

// PushRevocationCommand hands the transferred signed revocation list to
// the member, which applies and gossips it (a list already in force, e.g.
// gossiped by the operator, is success).
func (l Layout) PushRevocationCommand() string {
	return l.wrap(scriptHead + `rc=0; out=$("$B" revocation push "$S/revocations.json" 2>&1) || rc=$?; rm -f "$S/revocations.json"
case "$out" in *"not newer"*) echo "cbnode-deploy revocation=already in force"; exit 0;; esac
echo "$out"; exit $rc
`)
}

// outputValue finds "cbnode-deploy key=value" in out.
func outputValue(out, key string) string {
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "cbnode-deploy "+key+"="); ok {
			return v
		}
	}
	return ""
}
