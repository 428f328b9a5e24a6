package testkit

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// echoServer answers every byte it reads with the same byte.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(c net.Conn, msg string, wait time.Duration) (string, error) {
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, len(msg))
	_, err := io.ReadFull(c, buf)
	return string(buf), err
}

func TestProxyStallResumeReset(t *testing.T) {
	p := StartProxy(t, echoServer(t))
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := roundTrip(c, "hello", 5*time.Second); err != nil || got != "hello" {
		t.Fatalf("through the proxy: %q, %v", got, err)
	}

	// Stalled: nothing comes back, and the connection is not closed.
	p.Stall()
	if got, err := roundTrip(c, "stuck", 500*time.Millisecond); !isTimeout(err) {
		t.Fatalf("stalled proxy answered %q, %v; want a read timeout", got, err)
	}
	// A new connection is accepted but carries nothing either.
	c2, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := roundTrip(c2, "new", 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("new connection through a stalled proxy: %v, want a read timeout", err)
	}

	// Resumed: what was held back arrives, in order.
	p.Resume()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, len("stuck"))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "stuck" {
		t.Fatalf("after resume: %q, %v", buf, err)
	}
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf = make([]byte, len("new"))
	if _, err := io.ReadFull(c2, buf); err != nil || string(buf) != "new" {
		t.Fatalf("new connection after resume: %q, %v", buf, err)
	}

	// Reset: the client's next read fails with a reset, not an EOF.
	if n := p.Reset(); n != 2 {
		t.Fatalf("reset %d connections, want 2", n)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read after reset: %v, want ECONNRESET", err)
	}
	// The proxy still serves new connections.
	c3, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if got, err := roundTrip(c3, "again", 5*time.Second); err != nil || got != "again" {
		t.Fatalf("after reset: %q, %v", got, err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
