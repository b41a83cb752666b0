//go:build linux

package netlab

import (
	"fmt"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// maxOutput is how much of a background process's output Proc keeps (the
// most recent bytes).
const maxOutput = 4 << 20

// killTimeout bounds the wait for a process after SIGKILL.
const killTimeout = 5 * time.Second

// Proc is a background process started by Host.Start.
type Proc struct {
	ns   string
	argv string
	cmd  *exec.Cmd
	out  *tailBuffer
	done chan struct{}
	err  error // exit status; written before done is closed
}

// PID returns the process id (also its process group id).
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// String describes the process for logs.
func (p *Proc) String() string {
	return fmt.Sprintf("[%s pid %d] %s", p.ns, p.PID(), p.argv)
}

// Output returns a copy of the combined stdout and stderr captured so far
// (the last 4 MiB if there was more).
func (p *Proc) Output() []byte { return p.out.Bytes() }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits for the process to exit and returns its exit error (nil for
// exit status 0; an *exec.ExitError can be found with errors.As).
func (p *Proc) Wait() error {
	<-p.done
	return p.exitErr()
}

func (p *Proc) exitErr() error {
	if p.err == nil {
		return nil
	}
	return fmt.Errorf("netns %s: %s (pid %d): %w", p.ns, p.argv, p.PID(), p.err)
}

// Stop sends SIGTERM to the process group, waits up to 3 s, then sends
// SIGKILL, and returns the process's exit error (as Wait). A process ended
// by the SIGTERM reports "signal: terminated".
func (p *Proc) Stop() error {
	if err := p.terminate(stopTimeout); err != nil {
		return err
	}
	return p.exitErr()
}

// Kill sends SIGKILL to the process group and waits for the process to
// exit. It returns an error only if the process could not be ended.
func (p *Proc) Kill() error {
	return p.terminate(0)
}

// terminate ends the process: SIGTERM first if grace > 0, SIGKILL after
// grace. It returns an error only if the process does not exit.
func (p *Proc) terminate(grace time.Duration) error {
	if p.Exited() {
		return nil
	}
	if grace > 0 {
		p.signal(syscall.SIGTERM)
		select {
		case <-p.done:
			return nil
		case <-time.After(grace):
		}
	}
	p.signal(syscall.SIGKILL)
	select {
	case <-p.done:
		return nil
	case <-time.After(killTimeout):
		return fmt.Errorf("netns %s: %s (pid %d) did not exit after SIGKILL", p.ns, p.argv, p.PID())
	}
}

// Signal sends sig to the process and its process group (SIGSTOP and
// SIGCONT to freeze and thaw it, as a suspended VM).
func (p *Proc) Signal(sig syscall.Signal) { p.signal(sig) }

// signal signals the process (through its pidfd-safe os.Process) and the
// rest of its process group while it has not been reaped.
func (p *Proc) signal(sig syscall.Signal) {
	if p.Exited() {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	_ = killGroup(p.PID(), sig)
}

// tailBuffer is a concurrency-safe writer that keeps the last max bytes.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := len(p)
	if len(p) >= b.max {
		b.buf = append(b.buf[:0], p[len(p)-b.max:]...)
		return n, nil
	}
	if over := len(b.buf) + len(p) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	b.buf = append(b.buf, p...)
	return n, nil
}

func (b *tailBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf...)
}
