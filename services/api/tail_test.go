package api

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/changetail"
	"github.com/rosettacdc/rosetta/pkg/configstore"
)

// TestTailQueueDropsWhenFull checks the live tail's bound: a client that
// does not read makes the queue drop and count changes, never grow.
func TestTailQueueDropsWhenFull(t *testing.T) {
	q := newTailQueue(3)
	for i := uint64(1); i <= 10; i++ {
		q.offer(changetail.Event{Seq: i})
	}
	select {
	case <-q.ready:
	default:
		t.Fatal("not ready after offers")
	}
	evs, skipped := q.take()
	if len(evs) != 3 || evs[0].Seq != 1 || evs[2].Seq != 3 || skipped != 7 {
		t.Fatalf("took %d events (first %v), %d skipped; want 1..3 and 7 skipped", len(evs), evs, skipped)
	}
	q.offer(changetail.Event{Seq: 11})
	<-q.ready
	if evs, skipped := q.take(); len(evs) != 1 || evs[0].Seq != 11 || skipped != 0 {
		t.Fatalf("after a take: %v, %d skipped", evs, skipped)
	}
}

func TestTailTables(t *testing.T) {
	p := configstore.Pipeline{ID: 7, Tables: []string{"public.a", "sales.b"}}
	all, err := tailTables(p, "")
	if err != nil || len(all) != 2 || all[1] != (changetail.Table{Schema: "sales", Name: "b"}) {
		t.Fatalf("%v %v", all, err)
	}
	one, err := tailTables(p, "sales.b")
	if err != nil || len(one) != 1 {
		t.Fatalf("%v %v", one, err)
	}
	_, err = tailTables(p, "public.c")
	if ae, ok := err.(*apiError); !ok || ae.status != 422 || ae.field != "table" {
		t.Fatalf("a table outside the pipeline: %v", err)
	}
}

func TestSSEFrame(t *testing.T) {
	got := sseFrame("skipped", "", tailSkipped{Skipped: 4})
	if want := "event: skipped\ndata: {\"skipped\":4}\n\n"; got != want {
		t.Fatalf("%q, want %q", got, want)
	}
	if got := sseFrame("change", "9", map[string]string{"line": "a\nb"}); got != "event: change\nid: 9\ndata: {\"line\":\"a\\nb\"}\n\n" {
		t.Fatalf("%q", got)
	}
}

// TestTailEventsPerChange: a version 2 message of three changes becomes
// three "change" events whose ids are the message's stream sequence and
// the change's index; a version 1 message one event with the sequence
// alone. The queue's bound counts changes.
func TestTailEventsPerChange(t *testing.T) {
	changes := make([]contracts.Change, 3)
	for i := range changes {
		id := json.RawMessage(itoaJSON(i + 1))
		changes[i] = contracts.Change{V: contracts.MessageVersion, Op: contracts.OpCreate,
			Source: contracts.Source{SourceID: 1, Database: "d", Schema: "public", Table: "t", LSN: "0/5", CommitLSN: "0/9",
				Seq: int64(i + 1), CommitTime: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)},
			Columns: []contracts.Column{{Name: "id", Type: "bigint", BaseType: "bigint", Key: true}},
			Key:     contracts.Row{"id": id}, After: contracts.Row{"id": id}}
	}
	v2, err := contracts.MessageOf(changes).AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	v1c := changes[0]
	v1c.V = contracts.EnvelopeVersion
	v1, err := v1c.AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	q := newTailQueue(3)
	q.offerMessage(v2, 9)
	q.offerMessage(v1, 10)
	evs, skipped := q.take()
	if len(evs) != 3 || skipped != 1 {
		t.Fatalf("%d events, %d skipped; want 3 and 1 (the version 1 change)", len(evs), skipped)
	}
	for i, ev := range evs {
		frame := sseFrame("change", ev.ID(), ev)
		id := "9." + itoaJSON(i)
		if !strings.HasPrefix(frame, "event: change\nid: "+id+"\ndata: ") || ev.Key != "id="+itoaJSON(i+1) || ev.MessageChanges != 3 {
			t.Fatalf("event %d: %q", i, frame)
		}
	}
	q.offerMessage(v1, 10)
	if evs, _ := q.take(); len(evs) != 1 || evs[0].ID() != "10" || evs[0].Index != 0 || evs[0].MessageChanges != 1 {
		t.Fatalf("a version 1 message: %+v", evs)
	}
}

func itoaJSON(i int) string { b, _ := json.Marshal(i); return string(b) }
