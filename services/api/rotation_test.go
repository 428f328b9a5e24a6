package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// TestAPITokenRotation rotates the token of a client that polls
// GET /pipelines over TCP without a pause: a new token is made while the
// old one still works (the overlap), the client moves to it, then the old
// one is retired. The client must see no failed request across the
// switch, and the old token must then get a clear 401. Two ways to
// retire: DELETE /tokens/{id} for a token made through the API, and an
// API replica started with a new ROSETTA_API_TOKEN for the bootstrap
// token (docs/security.md, "Rotating API tokens").
func TestAPITokenRotation(t *testing.T) {
	t.Parallel()
	pg := testkit.StartPostgres(t)
	_, js := testkit.StartNATS(t).Connect(t)
	f := &fixture{pg: pg, js: js}
	boot1, boot2 := strings.Repeat("1", 40), strings.Repeat("2", 40)

	tests := []struct {
		name string
		// role of the new token; asOld: it is made with the old token
		// (the bootstrap admin), else with another admin's.
		role  string
		asOld bool
		// old returns the token in use before the rotation and what
		// retires it.
		old func(t *testing.T, c *client, base string) (token string, retire func())
	}{
		{"token made through the API", "operator", false, func(t *testing.T, c *client, base string) (string, func()) {
			var a tokenView
			mustCall(t, 201, "POST", base+"/tokens", c.token, map[string]any{"name": "ci-a", "role": "operator"}, &a)
			return a.Token, func() { mustCall(t, 200, "DELETE", fmt.Sprintf("%s/tokens/%d", base, a.ID), c.token, nil, nil) }
		}},
		{"bootstrap token", "admin", true, func(t *testing.T, c *client, base string) (string, func()) {
			if err := c.srv.Bootstrap(context.Background(), boot1); err != nil {
				t.Fatal(err)
			}
			return boot1, func() {
				// A replica (or this API after a restart) starts with the
				// new value, which revokes the old one in the shared
				// config database.
				next, err := New(Config{Addr: "127.0.0.1:0"}, c.store, js, nil, c.srv.log)
				if err != nil {
					t.Fatal(err)
				}
				if err := next.Bootstrap(context.Background(), boot2); err != nil {
					t.Fatal(err)
				}
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, f, js, nil)
			if err := c.srv.Listen(context.Background()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.srv.Shutdown(context.Background()) })
			base := "http://" + c.srv.Addr().String() + "/api/v1"

			oldTok, retire := tc.old(t, c, base)
			p := startPoller(t, base+"/pipelines", oldTok)
			p.waitFor(t, oldTok, 20)

			// Overlap: the new token is made with the old one and both work.
			creator := c.token
			if tc.asOld {
				creator = oldTok
			}
			var b tokenView
			mustCall(t, 201, "POST", base+"/tokens", creator, map[string]any{"name": "next", "role": tc.role}, &b)
			for _, tok := range []string{oldTok, b.Token} {
				if code, msg := get(t, base+"/whoami", tok); code != 200 {
					t.Fatalf("during the overlap a token gets %d: %s", code, msg)
				}
			}
			p.use(b.Token)
			p.waitFor(t, b.Token, 20)

			retire()
			code, msg := get(t, base+"/pipelines", oldTok)
			if code != 401 || !strings.Contains(msg, "revoked") {
				t.Fatalf("the retired token gets %d %q, want 401 saying it is revoked", code, msg)
			}
			if tc.asOld {
				// A replica still holding the old value refuses to start
				// rather than bring it back.
				if err := c.srv.Bootstrap(context.Background(), boot1); err == nil {
					t.Fatal("a replica started with the retired bootstrap value")
				}
				if code, msg := get(t, base+"/whoami", boot2); code != 200 {
					t.Fatalf("the new bootstrap token gets %d: %s", code, msg)
				}
			}
			p.waitFor(t, b.Token, p.count(b.Token)+20)
			oks, failures := p.stop()
			if len(failures) > 0 {
				t.Fatalf("the polling client saw %d failed requests across the rotation (%d ok), first: %s",
					len(failures), oks, failures[0])
			}
			t.Logf("%d requests, none failed; old token %d ok, new token %d ok", oks, p.count(oldTok), p.count(b.Token))
		})
	}
}

// call sends method url with token over TCP, body as JSON when not nil,
// and returns the status and the raw answer.
func call(t *testing.T, method, url, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

// get sends GET url with token and returns the status and the error
// message of the answer, if any.
func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	code, raw := call(t, "GET", url, token, nil)
	var e errorBody
	_ = json.Unmarshal(raw, &e)
	return code, e.Error
}

// mustCall is call, failing unless the status is want; the answer is
// decoded into out when not nil.
func mustCall(t *testing.T, want int, method, url, token string, body, out any) {
	t.Helper()
	code, raw := call(t, method, url, token, body)
	if code != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, url, code, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, url, raw, err)
		}
	}
}

// poller sends GET url in a loop with the token it is told to use and
// counts the answers: 200 per token, anything else as a failure.
type poller struct {
	mu       sync.Mutex
	token    string
	ok       map[string]int
	failures []string
	cancel   context.CancelFunc
	done     chan struct{}
}

func startPoller(t *testing.T, url, token string) *poller {
	ctx, cancel := context.WithCancel(context.Background())
	p := &poller{token: token, ok: map[string]int{}, cancel: cancel, done: make(chan struct{})}
	t.Cleanup(func() { p.stop() })
	client := &http.Client{Timeout: 10 * time.Second}
	go func() {
		defer close(p.done)
		for ctx.Err() == nil {
			p.mu.Lock()
			tok := p.token
			p.mu.Unlock()
			req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := client.Do(req)
			if ctx.Err() != nil {
				return
			}
			var fail string
			if err != nil {
				fail = err.Error()
			} else {
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					fail = fmt.Sprintf("status %d: %s", resp.StatusCode, raw)
				}
			}
			p.mu.Lock()
			if fail != "" {
				p.failures = append(p.failures, fail)
			} else {
				p.ok[tok]++
			}
			p.mu.Unlock()
		}
	}()
	return p
}

func (p *poller) use(token string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.token = token
}

func (p *poller) count(token string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ok[token]
}

// waitFor waits until n requests with token succeeded.
func (p *poller) waitFor(t *testing.T, token string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for p.count(token) < n {
		if time.Now().After(deadline) {
			p.mu.Lock()
			defer p.mu.Unlock()
			t.Fatalf("the poller made %d of %d requests with the token in 30s; failures: %v", p.ok[token], n, p.failures)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stop ends the loop and returns the successes and the failures.
func (p *poller) stop() (int, []string) {
	p.cancel()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, v := range p.ok {
		n += v
	}
	return n, p.failures
}
