package testkit

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Redis is a redis-server owned by one test.
type Redis struct {
	Port int
	Dir  string
	cmd  *exec.Cmd
}

// StartRedis starts redis-server on a free port with AOF in a temp dir; it is
// killed when the test ends.
func StartRedis(tb testing.TB) *Redis {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("testkit: redis-server not found: install it (apt-get install redis-server)")
	}
	r := &Redis{Dir: tb.TempDir()}
	for attempt := 0; ; attempt++ {
		r.Port = FreePort(tb)
		err := r.start(bin)
		if err == nil {
			break
		}
		if attempt == 3 {
			tb.Fatalf("testkit: start redis: %v", err)
		}
	}
	tb.Cleanup(r.Kill)
	return r
}

func (r *Redis) start(bin string) error {
	r.cmd = exec.Command(bin, "--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1",
		"--dir", r.Dir, "--appendonly", "yes", "--appendfsync", "always", "--save", "",
		"--logfile", filepath.Join(r.Dir, "redis.log"))
	if err := r.cmd.Start(); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if r.ready() {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(r.Dir, "redis.log"))
	r.Kill()
	return fmt.Errorf("redis on %d not ready: %s", r.Port, log)
}

// ready reports whether the server answers PING with PONG. An accepting
// socket is not enough: while Redis replays its AOF after a restart it
// answers every command with LOADING, and a test that writes then fails.
func (r *Redis) ready() bool {
	c, err := net.DialTimeout("tcp", r.Addr(), 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	return err == nil && strings.HasPrefix(string(buf[:n]), "+PONG")
}

// Addr is host:port.
func (r *Redis) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.Port) }

// URL is a redis:// URL.
func (r *Redis) URL() string { return "redis://" + r.Addr() + "/0" }

// Kill stops the server with SIGKILL (data on disk stays for Restart).
func (r *Redis) Kill() {
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
		r.cmd = nil
	}
}

// Restart starts the server again on the same port and dir.
func (r *Redis) Restart(tb testing.TB) {
	tb.Helper()
	r.Kill()
	bin, _ := exec.LookPath("redis-server")
	if err := r.start(bin); err != nil {
		tb.Fatalf("testkit: restart redis: %v", err)
	}
}
