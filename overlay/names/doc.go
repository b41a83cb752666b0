// Package names makes members reachable by name: "ping vm2", "ssh
// vm2.lab.cbnode". The names are the host names the CLADNet owner signed
// into the members' certificates; they are served from the members table
// only, so a member that leaves, is lost or is dropped from the table (an
// expired certificate) stops resolving on the next table change.
//
// A node serves its CLADNet's names three ways:
//
//   - a DNS server on its overlay address, port 53 (UDP and TCP), answering A
//     queries for <host>.<cladnet>.cbnode and <host>.cbnode (and a bare
//     <host> when asked directly); NXDOMAIN for unknown names in those zones,
//     REFUSED for everything else: it never forwards and never recurses;
//   - with systemd-resolved, that server is made the DNS server of the TUN
//     link for the domains ~cbnode and <cladnet>.cbnode (a search domain, so
//     a bare "vm2" is tried as vm2.<cladnet>.cbnode);
//   - otherwise a block of /etc/hosts between "# cbnode <cladnet> begin" and
//     "# cbnode <cladnet> end", rewritten atomically on every change and
//     removed on stop, so getent, ping and ssh find bare names too.
//
// Files:
//
//	doc.go       this overview
//	table.go     Table: the names, built purely from the members table (Build)
//	server.go    Server: the DNS server (github.com/miekg/dns); answer, the pure reply logic
//	hosts.go     the managed /etc/hosts block: RewriteHosts (pure), WriteHostsFile
//	resolved.go  systemd-resolved through resolvectl
//	service.go   Service: keeps table, server and system resolver in step with the members and the overlay address
package names
