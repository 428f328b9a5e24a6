package dlq

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

var update = flag.Bool("update", false, "rewrite golden files")

// newQueue returns a queue on r whose keys no other test uses.
func newQueue(t *testing.T, r *testkit.Redis, cfg Config) (*Queue, *redis.Client) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	if cfg.Prefix == "" {
		cfg.Prefix = "t" + testkit.RandomSuffix()
	}
	q, err := New(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return q, rdb
}

func change(id int, lsn uint64, name string) contracts.Change {
	return contracts.Change{
		V: contracts.EnvelopeVersion, Op: contracts.OpUpdate,
		Source:  contracts.Source{SourceID: 3, Schema: "public", Table: "items", CommitLSN: contracts.FormatLSN(lsn), Seq: int64(id)},
		Columns: []contracts.Column{{Name: "id", Type: "integer", BaseType: "integer", Key: true}, {Name: "name", Type: "text", BaseType: "text"}},
		Key:     contracts.Row{"id": json.RawMessage(fmt.Sprint(id))},
		After:   contracts.Row{"id": json.RawMessage(fmt.Sprint(id)), "name": json.RawMessage(fmt.Sprintf("%q", name))},
	}
}

func entryOf(t *testing.T, c contracts.Change, table string) Entry {
	t.Helper()
	body, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return Entry{SourceID: 3, DestinationID: 7, PipelineID: 2, Table: table,
		MsgID: contracts.MsgID(c.Source.SourceID, c.Source.CommitLSN, c.Source.Seq), Change: body,
		ErrorClass: "value_too_long", Error: "value too long for type character varying(5)",
		Stream: "ROSETTA_CDC_3", StreamSeq: uint64(c.Source.Seq) * 10, Subject: "rosetta.cdc.3.public.items.0"}
}

func add(t *testing.T, q *Queue, e Entry) string {
	t.Helper()
	id, added, err := q.Add(context.Background(), e)
	if err != nil || !added {
		t.Fatalf("add %s: added %v, %v", e.MsgID, added, err)
	}
	return id
}

func TestEntryGolden(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 6, 7, 8, 9, 10, 123456789, time.UTC)
	e := Entry{SourceID: 3, DestinationID: 7, PipelineID: 2, Table: "public.items", MsgID: "3:0/16B3748:1",
		Change: []byte(`{"v":1,"op":"c"}`), ErrorClass: "constraint_violation", Error: `new row violates check constraint "items_qty_check"`,
		Attempts: 2, FirstFailedAt: at, LastFailedAt: at.Add(time.Hour), Stream: "ROSETTA_CDC_3", StreamSeq: 42,
		Subject: "rosetta.cdc.3.public.items.0"}
	var b strings.Builder
	f := e.fields()
	for i := 0; i < len(f); i += 2 {
		fmt.Fprintf(&b, "%s=%s\n", f[i], f[i+1])
	}
	path := filepath.Join("testdata", "entry.golden")
	if *update {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Fatalf("entry fields changed (a persisted format: bump EntryVersion and keep reading the old one):\n%s\nwant:\n%s", b.String(), want)
	}
	// And back.
	vals := map[string]any{}
	for i := 0; i < len(f); i += 2 {
		vals[f[i].(string)] = f[i+1]
	}
	got, err := parseEntry(redis.XMessage{ID: "1-0", Values: vals})
	e.ID = "1-0"
	if err != nil || !entriesEqual(got, e) {
		t.Fatalf("parseEntry = %+v, %v; want %+v", got, err, e)
	}
	if _, err := parseEntry(redis.XMessage{ID: "1-0", Values: map[string]any{"v": "9"}}); err == nil {
		t.Fatal("an entry of an unknown version parsed")
	}
}

func entriesEqual(a, b Entry) bool {
	return a.ID == b.ID && a.SourceID == b.SourceID && a.DestinationID == b.DestinationID && a.PipelineID == b.PipelineID &&
		a.Table == b.Table && a.MsgID == b.MsgID && string(a.Change) == string(b.Change) && a.ErrorClass == b.ErrorClass &&
		a.Error == b.Error && a.Attempts == b.Attempts && a.FirstFailedAt.Equal(b.FirstFailedAt) &&
		a.LastFailedAt.Equal(b.LastFailedAt) && a.Stream == b.Stream && a.StreamSeq == b.StreamSeq && a.Subject == b.Subject
}

func TestKeys(t *testing.T) {
	t.Parallel()
	q, err := New(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), Config{})
	if err != nil {
		t.Fatal(err)
	}
	if got := q.Key(3, "public.items", 7); got != "dlq:3:public.items:7" {
		t.Errorf("Key = %q", got)
	}
	if got := q.tablesKey(3, 7); got != "dlq:tables:3:7" {
		t.Errorf("tablesKey = %q", got)
	}
	if _, err := New(nil, Config{}); err == nil {
		t.Error("New without a client: want error")
	}
	if err := (Config{Prefix: "a b"}).Validate(); err == nil {
		t.Error("prefix with a space: want error")
	}
	for _, c := range []string{"", "x", "public.t/", "/1-0", "public.t/abc"} {
		if _, _, err := ParseCursor(c); err == nil {
			t.Errorf("ParseCursor(%q): want error", c)
		}
	}
	if tb, id, err := ParseCursor("we/ird.t/1700000000000-3"); err != nil || tb != "we/ird.t" || id != "1700000000000-3" {
		t.Errorf("ParseCursor = %q %q %v", tb, id, err)
	}
	if got := truncate("héllo", 2); got != "h…" {
		t.Errorf("truncate = %q", got)
	}
}

func TestQueue(t *testing.T) {
	t.Parallel()
	r := testkit.StartRedis(t)
	ctx := context.Background()

	t.Run("add is idempotent per msg_id", func(t *testing.T) {
		t.Parallel()
		q, rdb := newQueue(t, r, Config{})
		e := entryOf(t, change(1, 100, "toolong"), "public.items")
		id := add(t, q, e)
		again, added, err := q.Add(ctx, e)
		if err != nil || added || again != id {
			t.Fatalf("second add = %s, added %v, %v; want %s, false", again, added, err, id)
		}
		add(t, q, entryOf(t, change(2, 100, "x"), "public.items"))
		if n := rdb.XLen(ctx, q.Key(3, "public.items", 7)).Val(); n != 2 {
			t.Fatalf("stream length %d, want 2", n)
		}
		page, err := q.List(ctx, ListOptions{SourceID: 3, DestinationID: 7})
		if err != nil || len(page.Entries) != 2 {
			t.Fatalf("list = %+v, %v", page, err)
		}
		got := page.Entries[0]
		if got.ID != id || got.Attempts != 1 || got.FirstFailedAt.IsZero() || !got.LastFailedAt.Equal(got.FirstFailedAt) ||
			got.StreamSeq != 10 || got.ErrorClass != "value_too_long" || string(got.Change) != string(e.Change) {
			t.Fatalf("entry = %+v", got)
		}
		if _, _, err := q.Add(ctx, Entry{Table: "public.items"}); err == nil {
			t.Fatal("add without msg_id: want error")
		}
	})

	t.Run("stats, pages and discard", func(t *testing.T) {
		t.Parallel()
		q, _ := newQueue(t, r, Config{})
		for i := 1; i <= 5; i++ {
			add(t, q, entryOf(t, change(i, 100, "a"), "public.b"))
		}
		for i := 6; i <= 7; i++ {
			add(t, q, entryOf(t, change(i, 100, "a"), "public.a"))
		}
		add(t, q, Entry{SourceID: 3, DestinationID: 8, Table: "public.a", MsgID: "other-destination"})
		stats, err := q.Stats(ctx, 3, 7)
		if err != nil || len(stats) != 2 || stats[0].Table != "public.a" || stats[0].Depth != 2 || stats[1].Depth != 5 ||
			stats[1].OldestID == "" || time.Since(stats[1].OldestAt) > time.Minute {
			t.Fatalf("stats = %+v, %v", stats, err)
		}
		// Pages of 3 across both tables, in table order.
		var ids []int
		cursor := ""
		for pages := 0; ; pages++ {
			page, err := q.List(ctx, ListOptions{SourceID: 3, DestinationID: 7, Limit: 3, After: cursor})
			if err != nil || page.Total != 7 {
				t.Fatalf("page %d = %+v, %v", pages, page, err)
			}
			for _, e := range page.Entries {
				var c contracts.Change
				if err := json.Unmarshal(e.Change, &c); err != nil {
					t.Fatal(err)
				}
				var id int
				_ = json.Unmarshal(c.Key["id"], &id)
				ids = append(ids, id)
			}
			if page.Next == "" {
				break
			}
			cursor = page.Next
		}
		if fmt.Sprint(ids) != "[6 7 1 2 3 4 5]" {
			t.Fatalf("paged ids = %v", ids)
		}
		one, err := q.List(ctx, ListOptions{SourceID: 3, DestinationID: 7, Table: "public.a"})
		if err != nil || one.Total != 2 || len(one.Entries) != 2 || one.Next != "" {
			t.Fatalf("one table = %+v, %v", one, err)
		}
		if _, err := q.List(ctx, ListOptions{SourceID: 3, DestinationID: 7, After: "nonsense"}); err == nil {
			t.Fatal("bad cursor: want error")
		}
		n, err := q.Discard(ctx, 3, 7, "public.a")
		if err != nil || n != 2 {
			t.Fatalf("discard public.a = %d, %v", n, err)
		}
		n, err = q.Discard(ctx, 3, 7, "")
		if err != nil || n != 5 {
			t.Fatalf("discard all = %d, %v", n, err)
		}
		if stats, _ := q.Stats(ctx, 3, 7); len(stats) != 0 {
			t.Fatalf("stats after discard = %+v", stats)
		}
		if stats, _ := q.Stats(ctx, 3, 8); len(stats) != 1 {
			t.Fatalf("the other destination's queue was touched: %+v", stats)
		}
		// A discarded change can be dead-lettered again.
		add(t, q, entryOf(t, change(6, 100, "a"), "public.a"))
	})

	t.Run("replay removes what applies and keeps the rest with attempts raised", func(t *testing.T) {
		t.Parallel()
		q, rdb := newQueue(t, r, Config{ApplyBatch: 4})
		for i := 1; i <= 6; i++ {
			add(t, q, entryOf(t, change(i, 100, "v"), "public.items"))
		}
		add(t, q, Entry{SourceID: 3, DestinationID: 7, Table: "public.items", MsgID: "junk", Change: []byte("{not json")})
		var mu sync.Mutex
		var seen []int
		apply := func(_ context.Context, cs []contracts.Change) ([]error, error) {
			out := make([]error, len(cs))
			mu.Lock()
			defer mu.Unlock()
			for i, c := range cs {
				var id int
				_ = json.Unmarshal(c.Key["id"], &id)
				seen = append(seen, id)
				if id%3 == 0 {
					out[i] = errors.New("still rejected")
				}
			}
			return out, nil
		}
		var progress []ReplayResult
		res, err := q.Replay(ctx, ReplayOptions{SourceID: 3, DestinationID: 7, Consumer: "w1",
			Classify: func(error) string { return "constraint_violation" },
			Progress: func(r ReplayResult) { progress = append(progress, r) }}, apply)
		if err != nil || res.Replayed != 4 || res.Failed != 3 {
			t.Fatalf("replay = %+v, %v; want 4 replayed, 3 failed", res, err)
		}
		if slices.Sort(seen); fmt.Sprint(seen) != "[1 2 3 4 5 6]" {
			t.Fatalf("applied %v, want each change once", seen)
		}
		if len(progress) != 2 || progress[1] != res {
			t.Fatalf("progress = %+v", progress)
		}
		page, err := q.List(ctx, ListOptions{SourceID: 3, DestinationID: 7})
		if err != nil || page.Total != 3 {
			t.Fatalf("left = %+v, %v", page, err)
		}
		for _, e := range page.Entries {
			if e.Attempts != 2 || e.LastFailedAt.Equal(e.FirstFailedAt) {
				t.Errorf("kept entry %s: attempts %d, first %s last %s", e.MsgID, e.Attempts, e.FirstFailedAt, e.LastFailedAt)
			}
			switch e.MsgID {
			case "junk":
				if e.ErrorClass != "undecodable" || !strings.Contains(e.Error, "valid change") {
					t.Errorf("junk entry = %+v", e)
				}
			default:
				if e.ErrorClass != "constraint_violation" || e.Error != "still rejected" {
					t.Errorf("kept entry = %+v", e)
				}
			}
		}
		if pend := rdb.XPending(ctx, q.Key(3, "public.items", 7), q.cfg.Group).Val(); pend.Count != 0 {
			t.Fatalf("%d entries left pending", pend.Count)
		}
		// The kept copies still deduplicate their change.
		e3 := entryOf(t, change(3, 100, "v"), "public.items")
		if _, added, err := q.Add(ctx, e3); err != nil || added {
			t.Fatalf("re-adding a kept change: added %v, %v", added, err)
		}
		// The next replay sees the copies; a fixed cause empties the queue.
		res, err = q.Replay(ctx, ReplayOptions{SourceID: 3, DestinationID: 7, Table: "public.items", Consumer: "w2"},
			func(_ context.Context, cs []contracts.Change) ([]error, error) { return make([]error, len(cs)), nil })
		if err != nil || res.Replayed != 2 || res.Failed != 1 {
			t.Fatalf("second replay = %+v, %v", res, err)
		}
		// Replayed changes may be dead-lettered again later.
		add(t, q, e3)
	})

	t.Run("replay honours max_count and ends when everything fails", func(t *testing.T) {
		t.Parallel()
		q, _ := newQueue(t, r, Config{ReadCount: 2, ApplyBatch: 2})
		for i := 1; i <= 5; i++ {
			add(t, q, entryOf(t, change(i, 100, "v"), "public.items"))
		}
		calls := 0
		failAll := func(_ context.Context, cs []contracts.Change) ([]error, error) {
			calls += len(cs)
			out := make([]error, len(cs))
			for i := range out {
				out[i] = errors.New("no")
			}
			return out, nil
		}
		res, err := q.Replay(ctx, ReplayOptions{SourceID: 3, DestinationID: 7, Consumer: "a", MaxCount: 3}, failAll)
		if err != nil || res.Failed != 3 || calls != 3 {
			t.Fatalf("max_count 3: %+v, %v, %d applied", res, err, calls)
		}
		calls = 0
		res, err = q.Replay(ctx, ReplayOptions{SourceID: 3, DestinationID: 7, Consumer: "b"}, failAll)
		if err != nil || res.Failed != 5 || calls != 5 {
			t.Fatalf("all failing: %+v, %v, %d applied; want each entry once", res, err, calls)
		}
	})

	t.Run("a stopped worker's entries are reclaimed by the next", func(t *testing.T) {
		t.Parallel()
		q, rdb := newQueue(t, r, Config{ReadCount: 10, ApplyBatch: 1})
		for i := 1; i <= 6; i++ {
			add(t, q, entryOf(t, change(i, 100, "v"), "public.items"))
		}
		applied := map[int]int{}
		record := func(cs []contracts.Change) {
			for _, c := range cs {
				var id int
				_ = json.Unmarshal(c.Key["id"], &id)
				applied[id]++
			}
		}
		wctx, cancel := context.WithCancel(ctx)
		n := 0
		_, err := q.Replay(wctx, ReplayOptions{SourceID: 3, DestinationID: 7, Consumer: "dies"},
			func(_ context.Context, cs []contracts.Change) ([]error, error) {
				record(cs)
				if n++; n == 2 {
					cancel() // the worker dies after its second entry
				}
				return make([]error, len(cs)), nil
			})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("killed replay: %v", err)
		}
		key := q.Key(3, "public.items", 7)
		if pend := rdb.XPending(ctx, key, q.cfg.Group).Val(); pend.Count != 4 || pend.Consumers["dies"] != 4 {
			t.Fatalf("pending after the kill = %+v, want 4 for the dead worker", pend)
		}
		// A new entry arrives meanwhile; the next worker takes everything.
		add(t, q, entryOf(t, change(7, 100, "v"), "public.items"))
		res, err := q.Replay(ctx, ReplayOptions{SourceID: 3, DestinationID: 7, Consumer: "next"},
			func(_ context.Context, cs []contracts.Change) ([]error, error) {
				record(cs)
				return make([]error, len(cs)), nil
			})
		if err != nil || res.Replayed != 5 {
			t.Fatalf("next replay = %+v, %v; want the 4 reclaimed and the new one", res, err)
		}
		for id := 1; id <= 7; id++ {
			if applied[id] != 1 {
				t.Errorf("change %d applied %d times, want once", id, applied[id])
			}
		}
		if n := rdb.XLen(ctx, key).Val(); n != 0 {
			t.Fatalf("%d entries left", n)
		}
		if pend := rdb.XPending(ctx, key, q.cfg.Group).Val(); pend.Count != 0 {
			t.Fatalf("pending left = %+v", pend)
		}
	})

	t.Run("an apply error leaves the entries pending", func(t *testing.T) {
		t.Parallel()
		q, rdb := newQueue(t, r, Config{})
		add(t, q, entryOf(t, change(1, 100, "v"), "public.items"))
		_, err := q.Replay(ctx, ReplayOptions{SourceID: 3, DestinationID: 7, Consumer: "x"},
			func(context.Context, []contracts.Change) ([]error, error) {
				return nil, errors.New("connection refused")
			})
		if err == nil || !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("replay = %v", err)
		}
		key := q.Key(3, "public.items", 7)
		if pend := rdb.XPending(ctx, key, q.cfg.Group).Val(); pend.Count != 1 {
			t.Fatalf("pending = %+v", pend)
		}
		page, _ := q.List(ctx, ListOptions{SourceID: 3, DestinationID: 7})
		if len(page.Entries) != 1 || page.Entries[0].Attempts != 1 {
			t.Fatalf("an unknown outcome changed the entry: %+v", page.Entries)
		}
	})

	t.Run("discard during a replay", func(t *testing.T) {
		t.Parallel()
		q, _ := newQueue(t, r, Config{ApplyBatch: 1})
		for i := 1; i <= 3; i++ {
			add(t, q, entryOf(t, change(i, 100, "v"), "public.items"))
		}
		res, err := q.Replay(ctx, ReplayOptions{SourceID: 3, DestinationID: 7, Consumer: "x"},
			func(_ context.Context, cs []contracts.Change) ([]error, error) {
				if _, err := q.Discard(ctx, 3, 7, ""); err != nil {
					t.Error(err)
				}
				return []error{errors.New("no")}, nil
			})
		if err != nil || res.Failed+res.Replayed > 3 {
			t.Fatalf("replay over a discarded queue = %+v, %v", res, err)
		}
		if page, _ := q.List(ctx, ListOptions{SourceID: 3, DestinationID: 7}); page.Total != 0 {
			t.Fatalf("a discarded entry came back: %+v", page)
		}
	})
}

// Redis down: Add fails (the sink keeps the message unacked); after a
// restart it works again, scripts reloaded, and nothing is doubled.
func TestRedisRestart(t *testing.T) {
	t.Parallel()
	r := testkit.StartRedis(t)
	q, rdb := newQueue(t, r, Config{})
	ctx := context.Background()
	e := entryOf(t, change(1, 100, "v"), "public.items")
	id := add(t, q, e)
	r.Kill()
	if _, _, err := q.Add(ctx, entryOf(t, change(2, 100, "v"), "public.items")); err == nil {
		t.Fatal("add with redis down: want error")
	}
	if _, err := q.Stats(ctx, 3, 7); err == nil {
		t.Fatal("stats with redis down: want error")
	}
	r.Restart(t)
	again, added, err := q.Add(ctx, e)
	if err != nil || added || again != id {
		t.Fatalf("add after restart = %s %v %v; want the entry written before the kill", again, added, err)
	}
	add(t, q, entryOf(t, change(2, 100, "v"), "public.items"))
	if n := rdb.XLen(ctx, q.Key(3, "public.items", 7)).Val(); n != 2 {
		t.Fatalf("entries after restart = %d, want 2", n)
	}
}
