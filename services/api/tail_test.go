package api

import (
	"testing"

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
