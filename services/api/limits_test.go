package api

import (
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/pkg/apitoken"
)

// testOutboundLimits checks the limits on routes that connect out: a
// token past its burst gets 429 with Retry-After and nothing connects,
// another token is not affected, routes that connect nowhere are not
// limited, and with the concurrency taken by a request hanging on a
// server that never answers, the next one gets 429 at once.
func testOutboundLimits(t *testing.T, f *fixture, js jetstream.JetStream) {
	c := newClientConfig(t, f, js, nil, Config{Addr: "127.0.0.1:0", CheckTimeout: 30 * time.Second,
		Outbound: OutboundLimits{Concurrent: 1, PerMinute: 1, Burst: 2}})

	// A server that accepts and never answers: a check against it hangs
	// until CheckTimeout.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int64
	held := make(chan net.Conn, 16)
	go func() {
		for {
			cn, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			held <- cn
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		close(held)
		for cn := range held {
			cn.Close()
		}
	})
	hanging := c.sourceBody("hangs")
	hanging["port"] = ln.Addr().(*net.TCPAddr).Port

	// Rate: two checked requests pass (their outcome does not matter),
	// the third is refused before it runs.
	for i := range 2 {
		body := c.sourceBody("rate" + strconv.Itoa(i))
		if code, raw := c.do("POST", "/sources", body); code == 429 {
			t.Fatalf("request %d within the burst: 429 %s", i, raw)
		}
	}
	before := conns.Load()
	code, raw, hdr := c.doHeaders("POST", "/sources", hanging)
	if code != 429 || !strings.Contains(string(raw), "retry in") {
		t.Fatalf("third request = %d %s, want 429", code, raw)
	}
	if s, err := strconv.Atoi(hdr.Get("Retry-After")); err != nil || s < 1 || s > 60 {
		t.Fatalf("Retry-After = %q, want whole seconds up to a minute", hdr.Get("Retry-After"))
	}
	if conns.Load() != before {
		t.Fatal("a refused request connected out")
	}
	// Not limited: a route that connects nowhere.
	for range 5 {
		c.must(200, "GET", "/sources", nil, nil)
	}

	// Concurrency: another token's request hangs on the silent server;
	// a third token is refused at once while it runs.
	other := *c
	other.token = c.mustToken("other", apitoken.Admin)
	done := make(chan int, 1)
	go func() {
		code, _ := other.do("POST", "/sources", hanging)
		done <- code
	}()
	deadline := time.Now().Add(20 * time.Second)
	for conns.Load() == before {
		if time.Now().After(deadline) {
			t.Fatal("the hanging request never connected")
		}
		time.Sleep(20 * time.Millisecond)
	}
	third := *c
	third.token = c.mustToken("third", apitoken.Admin)
	code, raw, hdr = third.doHeaders("POST", "/destinations/check", c.pgDestBody("d"))
	if code != 429 || hdr.Get("Retry-After") != "1" || !strings.Contains(string(raw), "already running") {
		t.Fatalf("request while the concurrency is taken = %d %s (Retry-After %q), want 429", code, raw, hdr.Get("Retry-After"))
	}
	// Release the hanging request: its server goes away.
	for len(held) > 0 {
		(<-held).Close()
	}
	select {
	case code := <-done:
		if code == 429 || code < 400 {
			t.Fatalf("hanging request ended %d", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the hanging request did not end after its server closed")
	}
	// The slot is free again.
	if code, raw := third.do("POST", "/destinations/check", c.pgDestBody("d")); code == 429 {
		t.Fatalf("after the hanging request ended: 429 %s", raw)
	}
}

// TestConnectsOutRoutesExist keeps connectsOut in step with the routes.
func TestConnectsOutRoutesExist(t *testing.T) {
	t.Parallel()
	for k := range connectsOut {
		if _, ok := accessMatrix[k]; !ok {
			t.Errorf("connectsOut lists %q, which is not a route", k)
		}
	}
}
