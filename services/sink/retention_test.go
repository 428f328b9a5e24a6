package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/dlq"
	"github.com/rosettacdc/rosetta/pkg/metrics"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

var _ TrimObserver = (*metrics.Metrics)(nil)

// syncBuffer is a log sink the retention loop writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRetentionLoop runs the sink's retention over real Redis: the loop
// trims the queues of the destinations the manager runs (and only those),
// counts the trimmed entries in rosetta_dlq_trimmed_total by reason and
// logs one line per trimmed table.
func TestRetentionLoop(t *testing.T) {
	t.Parallel()
	r := testkit.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	q, err := dlq.New(rdb, dlq.Config{Prefix: "t" + testkit.RandomSuffix()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	addN := func(source, dest int64, table string, n int) {
		for i := 1; i <= n; i++ {
			body, _ := json.Marshal(contracts.Change{Op: contracts.OpUpdate,
				Source: contracts.Source{SourceID: source, CommitLSN: contracts.FormatLSN(uint64(100 + i)), Seq: int64(i)}})
			e := dlq.Entry{SourceID: source, DestinationID: dest, Table: table, MsgID: fmt.Sprintf("%d:%s:%d", source, table, i), Change: body}
			if _, _, err := q.Add(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
	}
	addN(3, 7, "public.a", 10)
	addN(3, 7, "public.b", 2)
	addN(4, 9, "public.a", 10) // a destination this manager does not run

	m := metrics.New()
	logs := &syncBuffer{}
	cfg := DefaultConfig()
	cfg.DLQ.Retention = dlq.Retention{MaxEntries: 4, MaxAge: 24 * time.Hour}
	cfg.DLQ.TrimInterval = 50 * time.Millisecond
	cfg.DLQ.TrimObserver = m
	mgr := NewManagerWithDLQ(cfg, nil, nil, q, nil, slog.New(slog.NewTextHandler(logs, nil)))
	mgr.setQueues(map[queueKey]bool{{SourceID: 3, DestinationID: 7}: true})

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); mgr.runRetention(runCtx) }()
	defer func() { cancel(); <-done }()

	want := `rosetta_dlq_trimmed_total{destination_id="7",reason="entries",source_id="3",table="public.a"} 6`
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(scrapeMetrics(m), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s in:\n%s", want, scrapeMetrics(m))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for key, n := range map[string]int64{q.Key(3, "public.a", 7): 4, q.Key(3, "public.b", 7): 2, q.Key(4, "public.a", 9): 10} {
		if got := rdb.XLen(ctx, key).Val(); got != n {
			t.Errorf("%s holds %d, want %d", key, got, n)
		}
	}
	if strings.Contains(scrapeMetrics(m), `table="public.b"`) || strings.Contains(scrapeMetrics(m), `source_id="4"`) {
		t.Errorf("counted a queue that lost nothing:\n%s", scrapeMetrics(m))
	}
	if n := strings.Count(logs.String(), "dead letters trimmed by retention"); n != 1 {
		t.Errorf("%d trim log lines, want 1 (later passes trim nothing):\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "by_entries=6") {
		t.Errorf("log line without the count:\n%s", logs.String())
	}

	// Age: an hour later than a day after the newest entry, the rest go.
	mgr.trimOnce(ctx, time.Now().Add(25*time.Hour))
	wantLineIn(t, scrapeMetrics(m), `rosetta_dlq_trimmed_total{destination_id="7",reason="age",source_id="3",table="public.a"} 4`)
	wantLineIn(t, scrapeMetrics(m), `rosetta_dlq_trimmed_total{destination_id="7",reason="age",source_id="3",table="public.b"} 2`)
}

func scrapeMetrics(m *metrics.Metrics) string {
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

func wantLineIn(t *testing.T, out, line string) {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if l == line {
			return
		}
	}
	t.Fatalf("scrape has no line %q", line)
}
