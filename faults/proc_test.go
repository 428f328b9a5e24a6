package faults

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// proc is one child process the test starts, signals and restarts. Its
// output is kept (across restarts) for the failure report.
type proc struct {
	t    *testing.T
	name string
	argv []string
	env  []string
	log  *testkit.LogBuffer

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	state  *os.ProcessState
}

func newProc(t *testing.T, name string, env []string, argv ...string) *proc {
	p := &proc{t: t, name: name, argv: argv, env: env, log: &testkit.LogBuffer{}}
	t.Cleanup(func() {
		p.signal(syscall.SIGCONT)
		p.kill()
		if t.Failed() {
			t.Logf("%s output (tail):\n%s", p.name, testkit.Tail(p.log.String(), 5000))
		}
	})
	return p
}

// start runs the process; it must not be running.
func (p *proc) start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		p.t.Fatalf("start %s: already running", p.name)
	}
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Env = append(os.Environ(), p.env...)
	fmt.Fprintf(p.log, "----- %s start %s\n", time.Now().Format("15:04:05.000"), p.name)
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		p.mu.Lock()
		p.state = cmd.ProcessState
		p.mu.Unlock()
		close(exited)
	}()
	p.cmd, p.exited, p.state = cmd, exited, nil
}

func (p *proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd != nil {
		fmt.Fprintf(p.log, "----- %s %s %s\n", time.Now().Format("15:04:05.000"), sig, p.name)
		syscall.Kill(cmd.Process.Pid, sig)
	}
}

// stop sends sig and waits up to timeout for the exit; it reports whether
// the process exited in time (it is SIGKILLed otherwise) and its status.
func (p *proc) stop(sig syscall.Signal, timeout time.Duration) (inTime bool, state *os.ProcessState) {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return true, nil
	}
	p.signal(sig)
	inTime = true
	select {
	case <-exited:
	case <-time.After(timeout):
		inTime = false
		syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	state = p.state
	p.cmd = nil
	return inTime, state
}

func (p *proc) kill() { p.stop(syscall.SIGKILL, time.Minute) }

// running reports whether the process is alive (it did not exit on its own).
func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// natsServer is an external nats-server process with JetStream storing in
// a directory that survives its restarts.
type natsServer struct {
	*proc
	port int
	dir  string
}

func startNATSServer(t *testing.T) *natsServer {
	t.Helper()
	n := &natsServer{dir: t.TempDir()}
	for attempt := 0; ; attempt++ {
		n.port = testkit.FreePort(t)
		n.proc = newProc(t, "nats-server", nil, bins.natsServer, "-js", "-sd", n.dir,
			"-a", "127.0.0.1", "-p", strconv.Itoa(n.port))
		n.start()
		if n.waitReady(15 * time.Second) {
			return n
		}
		n.kill()
		if attempt == 2 {
			t.Fatalf("nats-server did not listen on %d:\n%s", n.port, n.log.String())
		}
	}
}

// restart starts the server again on the same port and store directory.
func (n *natsServer) restart() {
	n.t.Helper()
	n.start()
	if !n.waitReady(30 * time.Second) {
		n.t.Fatalf("nats-server did not come back on %d:\n%s", n.port, testkit.Tail(n.log.String(), 4000))
	}
}

func (n *natsServer) waitReady(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !n.running() {
			return false
		}
		c, err := net.DialTimeout("tcp", n.addr(), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

func (n *natsServer) addr() string { return "127.0.0.1:" + strconv.Itoa(n.port) }
func (n *natsServer) url() string  { return "nats://" + n.addr() }
