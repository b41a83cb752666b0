// Package examples holds sample files: the systemd unit (Unit, embedded
// for 'cbnode tumblebug deploy'), the demo.
package examples

import _ "embed"

// Unit is cbnode.service, the member's systemd unit.
//
//go:embed cbnode.service
var Unit string
