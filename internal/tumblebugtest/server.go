// Package tumblebugtest is a stand-in for Cloud-Barista's Tumblebug
// (v0.13.0) in tests: an HTTP server with exactly the routes 'cbnode
// tumblebug' uses, Tumblebug's request and response shapes (package
// tumblebug's types), its basic auth and its error bodies. Its nodes are
// whatever the test says: remote commands and file transfers go to the
// node's Runner (the end-to-end test runs them inside the node's network
// namespace with netlab; unit tests record them). Nothing runs on the
// machine itself. A transferred file is written into the node's home
// directory (Node.Home: the lab's namespaces share the machine's file
// system), as scp -t would, then the command runs on the node.
//
// File map:
//   - server.go: the server, its routes and its state (infras, vNets,
//     security groups, command history).
package tumblebugtest

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cloud-barista/cbnode/tumblebug"
)

// Runner runs a shell command on a node, with HOME (and the working
// directory) set to home, and returns its output; a non-nil error is the
// command's failure (its exit status).
type Runner func(ctx context.Context, home, command string) (stdout string, err error)

// Node is one node of a stand-in infra.
type Node struct {
	Info tumblebug.Node
	Home string // where transferred files land (~ of the SSH user)
	Run  Runner
}

// Server is the stand-in. Set User and Password before Start for basic auth.
type Server struct {
	User, Password string

	mu      sync.Mutex
	infras  map[string]map[string]*Node // ns/infra -> node ID -> node
	order   map[string][]string         // ns/infra -> node IDs in order
	vnets   map[string]tumblebug.VNet   // ns/id
	sgs     map[string]*tumblebug.SecurityGroup
	fail    map[string]string // node ID -> substring of the commands that fail there
	history []string          // every command as Tumblebug records it
	calls   []string          // "METHOD path"

	srv *http.Server
	ln  net.Listener
	wg  sync.WaitGroup
}

// New makes an empty stand-in.
func New() *Server {
	return &Server{infras: map[string]map[string]*Node{}, order: map[string][]string{}, vnets: map[string]tumblebug.VNet{},
		sgs: map[string]*tumblebug.SecurityGroup{}, fail: map[string]string{}}
}

// AddVNet registers a vNet.
func (s *Server) AddVNet(ns string, v tumblebug.VNet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vnets[ns+"/"+v.ID] = v
}

// AddSecurityGroup registers a security group.
func (s *Server) AddSecurityGroup(ns string, sg tumblebug.SecurityGroup) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sgs[ns+"/"+sg.ID] = &sg
}

// SecurityGroup returns a copy of a security group's current state.
func (s *Server) SecurityGroup(ns, id string) tumblebug.SecurityGroup {
	s.mu.Lock()
	defer s.mu.Unlock()
	sg := *s.sgs[ns+"/"+id]
	sg.FirewallRules = append([]tumblebug.FirewallRule(nil), sg.FirewallRules...)
	return sg
}

// AddNode adds (or replaces) a node of ns/infra.
func (s *Server) AddNode(ns, infra string, n *Node) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := ns + "/" + infra
	if s.infras[k] == nil {
		s.infras[k] = map[string]*Node{}
	}
	if _, ok := s.infras[k][n.Info.ID]; !ok {
		s.order[k] = append(s.order[k], n.Info.ID)
	}
	if n.Info.Status == "" {
		n.Info.Status = "Running"
	}
	s.infras[k][n.Info.ID] = n
}

// RemoveNode deletes a node from ns/infra (its VM is gone).
func (s *Server) RemoveNode(ns, infra, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := ns + "/" + infra
	delete(s.infras[k], id)
	var keep []string
	for _, o := range s.order[k] {
		if o != id {
			keep = append(keep, o)
		}
	}
	s.order[k] = keep
}

// FailCommands makes every command on node that contains substr fail
// (exit status 1, as ssh reports it); "" clears it.
func (s *Server) FailCommands(node, substr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if substr == "" {
		delete(s.fail, node)
	} else {
		s.fail[node] = substr
	}
}

// History is every command and file-transfer description Tumblebug would
// keep in its nodes' command history, in order.
func (s *Server) History() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.history...)
}

// Calls lists the requests served ("METHOD /path?query").
func (s *Server) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

// Serve serves on ln until Close.
func (s *Server) Serve(ln net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /tumblebug/readyz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, tumblebug.Readyz{Ready: true, Initialized: true, Message: "CB-Tumblebug is ready"})
	})
	mux.HandleFunc("GET /tumblebug/ns/{nsId}/infra/{infraId}", s.getInfra)
	mux.HandleFunc("GET /tumblebug/ns/{nsId}/resources/vNet/{vNetId}", s.getVNet)
	mux.HandleFunc("GET /tumblebug/ns/{nsId}/resources/securityGroup/{sgId}", s.getSG)
	mux.HandleFunc("POST /tumblebug/ns/{nsId}/resources/securityGroup/{sgId}/rules", s.postRules)
	mux.HandleFunc("POST /tumblebug/ns/{nsId}/cmd/infra/{infraId}", s.postCmd)
	mux.HandleFunc("POST /tumblebug/ns/{nsId}/transferFileAndCmd/infra/{infraId}", s.postFileAndCmd)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, tumblebug.SimpleMsg{Message: "Not Found"}) // echo's
	})
	s.ln = ln
	s.srv = &http.Server{Handler: s.auth(mux), ReadHeaderTimeout: 10 * time.Second}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.srv.Serve(ln)
	}()
}

// URL is the base URL (…/tumblebug) of a serving stand-in.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() + "/tumblebug" }

// Close stops the server and waits for it.
func (s *Server) Close() {
	if s.srv != nil {
		_ = s.srv.Close()
	}
	s.wg.Wait()
}

// auth is echo's BasicAuth middleware as Tumblebug configures it: readyz
// needs no credentials; a missing or wrong one is 401 {"message":"Unauthorized"}.
func (s *Server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.calls = append(s.calls, r.Method+" "+r.URL.RequestURI())
		s.mu.Unlock()
		if s.User != "" && r.URL.Path != "/tumblebug/readyz" {
			u, p, ok := r.BasicAuth()
			if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(s.User))&subtle.ConstantTimeCompare([]byte(p), []byte(s.Password)) != 1 {
				w.Header().Set("WWW-Authenticate", `basic realm=Restricted`)
				writeJSON(w, http.StatusUnauthorized, tumblebug.SimpleMsg{Message: "Unauthorized"})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// fail answers as Tumblebug's EndRequestWithLog does with an error and a
// result: 500 {"message": ...}.
func fail(w http.ResponseWriter, format string, a ...any) {
	writeJSON(w, http.StatusInternalServerError, tumblebug.SimpleMsg{Message: fmt.Sprintf(format, a...)})
}

func (s *Server) getInfra(w http.ResponseWriter, r *http.Request) {
	ns, id := r.PathValue("nsId"), r.PathValue("infraId")
	s.mu.Lock()
	defer s.mu.Unlock()
	nodes, ok := s.infras[ns+"/"+id]
	if !ok {
		fail(w, "The infra %s does not exist.", id)
		return
	}
	in := tumblebug.Infra{ID: id, Name: id, Status: "Running", Node: []tumblebug.Node{}}
	for _, nid := range s.order[ns+"/"+id] {
		in.Node = append(in.Node, nodes[nid].Info)
	}
	writeJSON(w, http.StatusOK, in)
}

func (s *Server) getVNet(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.vnets[r.PathValue("nsId")+"/"+r.PathValue("vNetId")]
	if !ok {
		fail(w, "The vNet %s does not exist.", r.PathValue("vNetId"))
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) getSG(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sg, ok := s.sgs[r.PathValue("nsId")+"/"+r.PathValue("sgId")]
	if !ok {
		fail(w, "The securityGroup %s does not exist.", r.PathValue("sgId"))
		return
	}
	writeJSON(w, http.StatusOK, sg)
}

// postRules adds the rules that are not there yet, one rule per port as
// the clouds keep them.
func (s *Server) postRules(w http.ResponseWriter, r *http.Request) {
	var req tumblebug.SecurityGroupUpdateReq
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, tumblebug.SimpleMsg{Message: "invalid request body: " + err.Error()})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sg, ok := s.sgs[r.PathValue("nsId")+"/"+r.PathValue("sgId")]
	if !ok {
		fail(w, "The securityGroup %s does not exist.", r.PathValue("sgId"))
		return
	}
	prev := *sg
	prev.FirewallRules = append([]tumblebug.FirewallRule(nil), sg.FirewallRules...)
	for _, rq := range req.FirewallRules {
		if rq.Protocol == "" || (rq.Direction != "inbound" && rq.Direction != "outbound") {
			writeJSON(w, http.StatusBadRequest, tumblebug.SimpleMsg{Message: "Direction must be inbound or outbound and Protocol is required"})
			return
		}
		for _, p := range strings.Split(rq.Ports, ",") {
			rule := tumblebug.FirewallRule{Port: strings.TrimSpace(p), Protocol: rq.Protocol, Direction: rq.Direction, CIDR: rq.CIDR}
			dup := false
			for _, have := range sg.FirewallRules {
				dup = dup || have == rule
			}
			if !dup {
				sg.FirewallRules = append(sg.FirewallRules, rule)
			}
		}
	}
	writeJSON(w, http.StatusOK, tumblebug.SecurityGroupUpdateResponse{ID: sg.ID, Name: sg.ID, Success: true,
		Message: "firewall rules added", Updated: *sg, Previous: &prev})
}

func (s *Server) node(ns, infra, id string) (*Node, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.infras[ns+"/"+infra][id]
	return n, ok
}

// exec runs command on node as Tumblebug's RunRemoteCommand does and
// makes its result.
func (s *Server) exec(ctx context.Context, infra string, n *Node, command string) tumblebug.CmdResult {
	s.mu.Lock()
	s.history = append(s.history, n.Info.ID+": "+command)
	failOn := s.fail[n.Info.ID]
	s.mu.Unlock()
	res := tumblebug.CmdResult{InfraID: infra, NodeID: n.Info.ID, NodeIP: n.Info.PublicIP,
		Command: map[int]string{0: command}, Stdout: map[int]string{}, Stderr: map[int]string{}}
	if failOn != "" && strings.Contains(command, failOn) {
		res.Stderr[0] = "stand-in: this node fails commands containing " + failOn
		res.Error = "Process exited with status 1"
		return res
	}
	out, err := n.Run(ctx, n.Home, command)
	res.Stdout[0] = out
	if err != nil {
		res.Stderr[0] = out
		res.Error = err.Error()
	}
	return res
}

// targets are the nodes a command goes to: nodeId, or all.
func (s *Server) targets(w http.ResponseWriter, r *http.Request) (string, []*Node, bool) {
	ns, infra := r.PathValue("nsId"), r.PathValue("infraId")
	s.mu.Lock()
	nodes, ok := s.infras[ns+"/"+infra]
	var list []*Node
	if ok {
		for _, id := range s.order[ns+"/"+infra] {
			list = append(list, nodes[id])
		}
	}
	s.mu.Unlock()
	if !ok {
		fail(w, "The infra %s does not exist.", infra)
		return "", nil, false
	}
	if id := r.URL.Query().Get("nodeId"); id != "" {
		n, ok := s.node(ns, infra, id)
		if !ok {
			// Tumblebug reports it in the node's result.
			return infra, []*Node{{Info: tumblebug.Node{ID: id}}}, true
		}
		list = []*Node{n}
	}
	return infra, list, true
}

func (s *Server) postCmd(w http.ResponseWriter, r *http.Request) {
	var req tumblebug.CmdReq
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Command) == 0 {
		writeJSON(w, http.StatusBadRequest, tumblebug.SimpleMsg{Message: "invalid request: command is required"})
		return
	}
	infra, list, ok := s.targets(w, r)
	if !ok {
		return
	}
	out := tumblebug.CmdResults{Results: []tumblebug.CmdResult{}}
	for _, n := range list {
		if n.Run == nil {
			out.Results = append(out.Results, tumblebug.CmdResult{InfraID: infra, NodeID: n.Info.ID, Error: fmt.Sprintf("failed to get Node IP: node %s not found", n.Info.ID)})
			continue
		}
		res := tumblebug.CmdResult{InfraID: infra, NodeID: n.Info.ID, NodeIP: n.Info.PublicIP,
			Command: map[int]string{}, Stdout: map[int]string{}, Stderr: map[int]string{}}
		for i, c := range req.Command {
			one := s.exec(r.Context(), infra, n, c)
			res.Command[i], res.Stdout[i], res.Stderr[i] = c, one.Stdout[0], one.Stderr[0]
			if one.Error != "" {
				res.Error = one.Error
				break
			}
		}
		out.Results = append(out.Results, res)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) postFileAndCmd(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseMultipartForm(64 << 20); err != nil {
		writeJSON(w, http.StatusBadRequest, tumblebug.SimpleMsg{Message: "failed to read the file: " + err.Error()})
		return
	}
	target, command := r.FormValue("path"), r.FormValue("command")
	if target == "" {
		writeJSON(w, http.StatusBadRequest, tumblebug.SimpleMsg{Message: "target path is required"})
		return
	}
	f, fh, err := r.FormFile("file")
	if err != nil {
		writeJSON(w, http.StatusBadRequest, tumblebug.SimpleMsg{Message: "failed to read the file: " + err.Error()})
		return
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil || len(data) > 50<<20 {
		writeJSON(w, http.StatusBadRequest, tumblebug.SimpleMsg{Message: "file too large, max size is 52428800 bytes"})
		return
	}
	infra, list, ok := s.targets(w, r)
	if !ok {
		return
	}
	out := tumblebug.FileCmdResults{FileTransferResults: tumblebug.CmdResults{Results: []tumblebug.CmdResult{}}}
	var cmds []tumblebug.CmdResult
	for _, n := range list {
		desc := fmt.Sprintf("scp %s to %s", fh.Filename, target)
		res := tumblebug.CmdResult{InfraID: infra, NodeID: n.Info.ID, NodeIP: n.Info.PublicIP,
			Command: map[int]string{0: desc}, Stdout: map[int]string{}, Stderr: map[int]string{}}
		s.mu.Lock()
		s.history = append(s.history, n.Info.ID+": "+desc)
		failOn := s.fail[n.Info.ID]
		s.mu.Unlock()
		switch {
		case n.Run == nil:
			res.Error = fmt.Sprintf("failed to get Node IP: node %s not found", n.Info.ID)
		case failOn != "" && strings.Contains(desc, failOn):
			res.Error = "file transfer failed: stand-in: this node fails " + failOn
		default:
			if err := writeInHome(n.Home, target, fh.Filename, data); err != nil {
				res.Stderr[0] = "Failed to transfer file: " + err.Error()
				res.Error = "file transfer failed: " + err.Error()
			} else {
				res.Stdout[0] = "File transfer successful: " + target + fh.Filename
			}
		}
		out.FileTransferResults.Results = append(out.FileTransferResults.Results, res)
		if res.Error == "" && command != "" {
			cmds = append(cmds, s.exec(r.Context(), infra, n, command))
		}
	}
	if len(cmds) > 0 {
		out.CmdResults = &tumblebug.CmdResults{Results: cmds}
	}
	writeJSON(w, http.StatusOK, out)
}

// writeInHome stores the file as scp -t does: at dir/name, mode 0644, dir
// relative to the user's home unless absolute ("~/" is the home); only
// directories under the home are accepted.
func writeInHome(home, dir, name string, data []byte) error {
	if strings.Contains(name, "/") || name == "" || name == "." || name == ".." {
		return fmt.Errorf("bad file name %q", name)
	}
	switch {
	case dir == "~":
		dir = home
	case strings.HasPrefix(dir, "~/"):
		dir = filepath.Join(home, dir[2:])
	case !filepath.IsAbs(dir):
		dir = filepath.Join(home, dir)
	}
	// The namespaces share the host's file system: a stand-in node writes
	// only under its own home, never elsewhere on the host.
	if rel, err := filepath.Rel(home, filepath.Clean(dir)); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return fmt.Errorf("scp: %s: Permission denied (the stand-in writes only under the node's home %s)", dir, home)
	}
	st, err := os.Stat(dir)
	if err != nil || !st.IsDir() {
		return fmt.Errorf("scp: %s: No such file or directory", dir)
	}
	return os.WriteFile(filepath.Join(dir, name), data, 0o644)
}

// NodeHome is the home directory of a node.
func (s *Server) NodeHome(ns, infra, id string) (string, bool) {
	n, ok := s.node(ns, infra, id)
	if !ok {
		return "", false
	}
	return n.Home, true
}
