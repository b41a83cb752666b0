//go:build !linux

package node

import "context"

// watchAddrs is a no-op off Linux: dead connections wait for transport timeouts.
func (n *Node) watchAddrs(ctx context.Context) { n.wg.Done() }
