// Package examples holds sample files: the systemd unit (Unit, embedded
// for 'cbnode tumblebug deploy'), the demo.
package examples

import _ "embed"

//go:embed cbnode.service
var unit string

// Unit returns cbnode.service, the member's systemd unit.
func Unit() string { return unit }
