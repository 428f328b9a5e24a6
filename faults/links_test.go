package faults

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// linkEnv shortens the two detection timeouts that default to minutes or
// half a minute, so that a stall outlasting them keeps the test short. The
// NATS pings keep their defaults (5s × 2: about 15s).
var linkEnv = []string{
	"ROSETTA_CAPTURE_RECEIVE_TIMEOUT=15s",
	"ROSETTA_SINK_APPLY_TIMEOUT=15s",
}

// link is one pair of components joined through a proxy, and how the
// test sees that the component noticed the stalled link by itself.
type link struct {
	proxy func(*world) *testkit.Proxy
	// detected reports whether the component declared the link dead since
	// the stall began (logFrom is the length of its log then), and how.
	detected func(w *world, logFrom int) (bool, string)
	logOf    func(*world) *proc
}

var links = map[string]link{
	// capture <-> source PostgreSQL: the replication connection carries
	// nothing, not even the keepalive capture asks for with every status
	// update, for ROSETTA_CAPTURE_RECEIVE_TIMEOUT; capture drops it and
	// reports why.
	"CaptureSource": {
		proxy: func(w *world) *testkit.Proxy { return w.pxSource },
		detected: func(w *world, _ int) (bool, string) {
			state, msg := w.sourceState()
			return state == "ERROR" && strings.Contains(msg, "silent"), state + ": " + msg
		},
		logOf: func(w *world) *proc { return w.capture },
	},
	// capture <-> NATS: pings go unanswered, or a write blocked on the
	// stalled link passes its deadline (capture publishes more bytes than
	// the socket buffers hold); either way the client declares the
	// connection dead and reconnects.
	"CaptureNATS": {
		proxy:    func(w *world) *testkit.Proxy { return w.pxCaptureNATS },
		detected: func(w *world, from int) (bool, string) { return natsLinkDead(w.capture, from) },
		logOf:    func(w *world) *proc { return w.capture },
	},
	// sink <-> NATS: the same, in the sink.
	"SinkNATS": {
		proxy:    func(w *world) *testkit.Proxy { return w.pxSinkNATS },
		detected: func(w *world, from int) (bool, string) { return natsLinkDead(w.sink, from) },
		logOf:    func(w *world) *proc { return w.sink },
	},
	// sink <-> destination: the apply in progress (or the next one) gets no
	// answer; ROSETTA_SINK_APPLY_TIMEOUT fails it, the pipeline shows the
	// destination in ERROR, and the retry opens a new connection.
	"SinkDestination": {
		proxy: func(w *world) *testkit.Proxy { return w.pxDest },
		detected: func(w *world, _ int) (bool, string) {
			h, reason := w.destinationHealth()
			return h == "ERROR", h + ": " + reason
		},
		logOf: func(w *world) *proc { return w.sink },
	},
}

// natsLinkDead reports whether p's NATS client declared its connection dead
// since from: unanswered pings (stale connection) or a write past its
// deadline (i/o timeout).
func natsLinkDead(p *proc, from int) (bool, string) {
	if ok, line := logSays(p, from, "stale connection"); ok {
		return ok, line
	}
	return logSays(p, from, "i/o timeout")
}

// logSays reports whether p's output since from contains s, and the line.
func logSays(p *proc, from int, s string) (bool, string) {
	out := p.log.String()
	if from > len(out) {
		from = len(out)
	}
	i := strings.Index(out[from:], s)
	if i < 0 {
		return false, ""
	}
	line := out[strings.LastIndexByte(out[:from+i], '\n')+1:]
	if k := strings.IndexByte(line, '\n'); k >= 0 {
		line = line[:k]
	}
	return true, line
}

// testLinkFault (item 9) puts one pair of components behind a proxy and,
// under load, resets its connections twice (RST on both sides), then
// stalls it: no byte passes either way and nothing is closed, as when a
// peer or a middlebox vanishes. The component must find out by itself
// within its detection timeout (the test fails if it does not within 60s)
// and keep trying; after the link is restored everything drains and the
// destination equals the source.
func testLinkFault(name string, seed uint64) func(t *testing.T) {
	return func(t *testing.T) {
		l := links[name]
		w, wl := setup(t, worldOptions{proxies: true, ownDestCluster: true, env: linkEnv}, false, seed)
		px := l.proxy(w)
		for i := range 2 {
			time.Sleep(3 * time.Second)
			n := px.Reset()
			t.Logf("reset %d: %d connections of %s reset", i+1, n, px)
			if n == 0 {
				t.Errorf("reset %d: no connection through %s to reset", i+1, px)
			}
		}
		time.Sleep(3 * time.Second)

		from := len(l.logOf(w).log.String())
		px.Stall()
		stalled := time.Now()
		var how string
		for {
			ok, what := l.detected(w, from)
			if ok {
				how = what
				break
			}
			if time.Since(stalled) > 60*time.Second {
				t.Errorf("%s: the stalled link was not detected within 60s (last seen: %s)", name, what)
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		if how != "" {
			t.Logf("%s: stalled link detected after %s: %s", name, time.Since(stalled).Round(100*time.Millisecond), how)
		}
		time.Sleep(2 * time.Second) // reconnect attempts meet the stalled proxy too
		px.Resume()
		accepted, reset := px.Stats()
		t.Logf("%s: %d connections accepted, %d reset", px, accepted, reset)
		time.Sleep(5 * time.Second)
		finish(t, w, wl, 150*time.Second)
	}
}

// sourceState is what GET /pipelines/{id} shows of the source.
func (w *world) sourceState() (string, string) {
	var p struct {
		SourceState struct {
			State     string `json:"state"`
			LastError string `json:"last_error"`
		} `json:"source_state"`
	}
	if _, err := w.call("GET", fmt.Sprintf("/pipelines/%d", w.pipelineID), nil, &p); err != nil {
		return "?", err.Error()
	}
	return p.SourceState.State, p.SourceState.LastError
}
