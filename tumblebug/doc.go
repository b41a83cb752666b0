// Package tumblebug deploys cbnode onto the VMs of a Cloud-Barista
// Tumblebug infra (an "MCI" before v0.12.6): it reads the infra and its
// vNets, creates the CLADNet through the operator in a range free of every
// vNet and subnet, opens the cbnode port in the security groups, starts a
// bootstrap node, and on each node installs the binary, the unit and
// /etc/cbnode/env (the node's cloud facts), hands it a token bound to its
// own key by file transfer (never in a command line: Tumblebug keeps
// command history) and starts it; then it waits for every node to be a
// member and prints a table. Run again, it changes only what is missing;
// nodes gone from the infra are revoked. docs/tumblebug.md tells the flow.
//
// The client speaks Tumblebug v0.12.6 to v0.13.x (infra/node names,
// transferFileAndCmd); the shapes are those of v0.13.0's swagger.
//
// File map:
//   - types.go: Tumblebug's request and response shapes used.
//   - client.go: the REST client (basic auth, error kinds: unreachable,
//     401, not found, command failed on a node).
//   - facts.go: a node's cloud facts, host names, the env file.
//   - plan.go: the pure steps (reserved ranges, firewall rules, bootstrap
//     choice, per-node actions from a probe, nodes gone).
//   - script.go: the shell commands sent to nodes (install layout,
//     systemd or background service).
//   - state.go: the state file (CLADNet, bootstrap, deployed nodes).
//   - deploy.go: Config and Run, the deploy and plan driver: Tumblebug's
//     infra and vNets, the CLADNet, the firewall, progress lines.
//   - nodes.go: setting up the nodes (bootstrap node first, then in
//     parallel): probe, actions, key and token.
//   - revoke.go: revoking the nodes gone from the infra.
//   - report.go: waiting for the members, the table, the operator check.
//   - binary.go: --binary's format and architecture.
package tumblebug
