package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/changetail"
	"github.com/rosettacdc/rosetta/pkg/configstore"
)

// Live tail (GET /pipelines/{id}/tail): server-sent events of a pipeline's
// changes, read the way `rosetta tail` reads them (pkg/changetail). The
// console reads the stream with fetch, sending its token in the
// Authorization header like every other call; EventSource is not used
// because it cannot send headers, and a token is never put in a URL
// (docs/security.md).
const (
	// tailBuffer is how many changes wait for a slow client before newer
	// ones are dropped and counted in a "skipped" event.
	tailBuffer = 256
	// tailHeartbeat is how often an idle stream sends a comment, so that
	// proxies keep it open and a vanished client is noticed.
	tailHeartbeat = 15 * time.Second
	// tailWriteTimeout bounds each write to the client: a client that
	// reads nothing for this long is dropped.
	tailWriteTimeout = 30 * time.Second
)

// UseTap makes the live tail read through js, a connection as the tap
// user (natsx.TapPermissions: read changes, nothing else). Without it the
// tail uses the API's own connection, as with an external NATS, where
// the process has the one set of credentials of ROSETTA_NATS_URL.
func (s *Server) UseTap(js jetstream.JetStream) { s.tapJS = js }

// tailPipeline answers GET /pipelines/{id}/tail[?table=schema.table].
func (s *Server) tailPipeline(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	p, err := s.store.GetPipeline(c.UserContext(), id)
	if errors.Is(err, configstore.ErrNotFound) {
		return notFound("pipeline %d does not exist", id)
	}
	if err != nil {
		return err
	}
	tables, err := tailTables(p, c.Query("table"))
	if err != nil {
		return err
	}
	js := s.tapJS
	if js == nil {
		js = s.js
	}
	// Created before the response starts, so that a NATS problem is an
	// error status rather than a stream that ends at once.
	cons, err := changetail.Open(c.UserContext(), js, p.SourceID, tables, changetail.Start{})
	if errors.Is(err, changetail.ErrNoStream) {
		return &apiError{status: fiber.StatusConflict,
			msg: fmt.Sprintf("pipeline %d has no captured changes yet (source %d has no change stream): start the pipeline, then tail it", id, p.SourceID)}
	}
	if err != nil {
		return fmt.Errorf("tail pipeline %d: %w", id, err)
	}
	c.Set(fiber.HeaderContentType, "text/event-stream; charset=utf-8")
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set("X-Accel-Buffering", "no")
	conn := c.Context().Conn()
	// The request's context ends when the handler returns; the stream
	// lives until the client goes or the server shuts down.
	ctx, cancel := context.WithCancel(s.streams)
	log := s.log.With("pipeline", id)
	// The watch below reads the connection: no request may follow this
	// one on it.
	c.Context().SetConnectionClose()
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		q := newTailQueue(tailBuffer)
		var wg sync.WaitGroup
		// Whatever ends the stream stops both goroutines and waits for
		// them, so nothing outlives the response.
		defer func() {
			cancel()
			_ = conn.SetReadDeadline(time.Now())
			wg.Wait()
		}()
		// A client that goes away closes its connection, which a read
		// then reports at once; writes would notice only after the
		// kernel's buffers fill or a heartbeat fails. Nothing else reads
		// the connection while the response streams. The deadline left
		// from reading the request is cleared first, and set to now at
		// the end to stop the read.
		_ = conn.SetReadDeadline(time.Time{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			var b [1]byte
			_, _ = conn.Read(b[:])
			cancel()
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cancel()
			err := changetail.Follow(ctx, cons, func(msg jetstream.Msg) error {
				var seq uint64
				if md, err := msg.Metadata(); err == nil {
					seq = md.Sequence.Stream
				}
				q.offerMessage(msg.Data(), seq)
				return nil
			})
			if err != nil {
				log.Warn("live tail stopped reading", "error", err)
			}
		}()
		write := func(frames ...string) bool {
			// Extends the deadline fasthttp set once for the whole
			// response: each write gets tailWriteTimeout.
			_ = conn.SetWriteDeadline(time.Now().Add(tailWriteTimeout))
			for _, f := range frames {
				if _, err := w.WriteString(f); err != nil {
					return false
				}
			}
			return w.Flush() == nil
		}
		if !write(": live tail of pipeline " + strconv.FormatInt(id, 10) + "\n\n") {
			return
		}
		beat := time.NewTicker(tailHeartbeat)
		defer beat.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-beat.C:
				if !write(": heartbeat\n\n") {
					return
				}
			case <-q.ready:
				evs, skipped := q.take()
				frames := make([]string, 0, len(evs)+1)
				for _, ev := range evs {
					frames = append(frames, sseFrame("change", ev.ID(), ev))
				}
				// The dropped changes came after the queued ones.
				if skipped > 0 {
					frames = append(frames, sseFrame("skipped", "", tailSkipped{Skipped: skipped}))
				}
				if !write(frames...) {
					return
				}
			}
		}
	})
	return nil
}

// tailSkipped is the data of a "skipped" event: changes dropped because
// the client read too slowly.
type tailSkipped struct {
	Skipped int64 `json:"skipped"`
}

// sseFrame is one server-sent event. JSON has no raw newline, so data is
// one line.
func sseFrame(event, id string, data any) string {
	body, err := json.Marshal(data)
	if err != nil {
		body = []byte(`{"error":"unencodable event"}`)
	}
	var b strings.Builder
	b.WriteString("event: " + event + "\n")
	if id != "" {
		b.WriteString("id: " + id + "\n")
	}
	b.WriteString("data: ")
	b.Write(body)
	b.WriteString("\n\n")
	return b.String()
}

// tailTables is what a tail of p follows: the table asked for, which must
// be one of p's, or all of p's tables.
func tailTables(p configstore.Pipeline, table string) ([]changetail.Table, error) {
	names := p.Tables
	if table != "" {
		if !slices.Contains(p.Tables, table) {
			return nil, invalid("table", "table %q is not replicated by pipeline %d; its tables are %s", table, p.ID, strings.Join(p.Tables, ", "))
		}
		names = []string{table}
	}
	out := make([]changetail.Table, 0, len(names))
	for _, n := range names {
		t, err := contracts.ParseTable(n)
		if err != nil {
			return nil, fmt.Errorf("pipeline %d table %q: %w", p.ID, n, err)
		}
		out = append(out, t)
	}
	return out, nil
}

// tailQueue holds changes between the reader and a client. It never
// blocks the reader and never grows past its size: when full, a change is
// dropped and counted, and the client is told how many it missed.
type tailQueue struct {
	mu      sync.Mutex
	evs     []changetail.Event
	size    int
	skipped int64
	ready   chan struct{} // has a value while there is something to take
}

func newTailQueue(size int) *tailQueue {
	return &tailQueue{size: size, ready: make(chan struct{}, 1)}
}

// offer adds ev, or counts it as skipped when the queue is full.
func (q *tailQueue) offer(ev changetail.Event) {
	q.mu.Lock()
	if len(q.evs) < q.size {
		q.evs = append(q.evs, ev)
	} else {
		q.skipped++
	}
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// offerMessage offers one event per change of a message body (a message
// may hold several), or one error event when it is not a change message.
// The bound and the skipped count are in changes.
func (q *tailQueue) offerMessage(data []byte, seq uint64) {
	for _, ev := range changetail.Events(data, seq) {
		q.offer(ev)
	}
}

// take returns what is queued and how many changes were dropped since the
// last take: they came after the ones returned.
func (q *tailQueue) take() ([]changetail.Event, int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	evs, skipped := q.evs, q.skipped
	q.evs, q.skipped = nil, 0
	return evs, skipped
}
