package changetail

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/contracts"
)

func update() contracts.Change {
	return contracts.Change{
		V: contracts.EnvelopeVersion, Op: contracts.OpUpdate,
		Source: contracts.Source{SourceID: 1, Schema: "public", Table: "orders", CommitLSN: "0/1",
			CommitTime: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)},
		Columns: []contracts.Column{{Name: "id", Type: "bigint", Key: true}, {Name: "title", Type: "text"}},
		Key:     contracts.Row{"id": json.RawMessage("5")},
		Before:  contracts.Row{"id": json.RawMessage("5"), "title": json.RawMessage(`"old"`)},
		After:   contracts.Row{"id": json.RawMessage("5"), "title": json.RawMessage(`"new"`)},
	}
}

func TestLineFullBefore(t *testing.T) {
	ch := update()
	if got, want := Line(&ch, Pos{Seq: 9, Of: 1}), "2026-11-23T10:00:00.000000Z  u  public.orders  id=5  title  #9"; got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"public.orders":          "public.orders",
		"a\x1b[31mred":           `a\u001b[31mred`,
		"evil\u202egnp.exe":      `evil\u202egnp.exe`,
		"zero\u200bwidth":        `zero\u200bwidth`,
		"c1\u009bx":              `c1\u009bx`,
		"tag\U000E0041":          `tag\udb40\udc41`,
		"tab\tstays, é stays 日本": "tab\tstays, é stays 日本",
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestNewEventEscapes checks that every name and value of an event, which
// the console shows as text, arrives escaped: a bidi override in a column
// name and an escape sequence in a table name read as \uXXXX.
func TestNewEventEscapes(t *testing.T) {
	ch := update()
	ch.Source.Table = "ord\x1bers"
	ch.Columns[1].Name = "ti\u202etle"
	ch.Before = nil
	ch.After = contracts.Row{"id": json.RawMessage("5"), "ti\u202etle": json.RawMessage(`"a\u0007b"`)}
	data, err := json.Marshal(ch)
	if err != nil {
		t.Fatal(err)
	}
	evs := Events(data, 3)
	if len(evs) != 1 {
		t.Fatalf("%d events of a version 1 change", len(evs))
	}
	ev := evs[0]
	want := Event{Seq: 3, MessageChanges: 1, Op: "u", Schema: "public", Table: `ord\u001bers`, CommitTime: ch.Source.CommitTime, CommitLSN: "0/1",
		Key: "id=5", Changed: []string{"id", `ti\u202etle`},
		Values: []Value{{"id", "5"}, {`ti\u202etle`, `"a\u0007b"`}},
		Line:   `2026-11-23T10:00:00.000000Z  u  public.ord\u001bers  id=5  id,ti\u202etle  #3`}
	if !reflect.DeepEqual(ev, want) {
		t.Fatalf("got  %+v\nwant %+v", ev, want)
	}
	if bad := Events([]byte("{"), 4); len(bad) != 1 || bad[0].Error == "" || bad[0].Seq != 4 {
		t.Fatalf("a body that is not a change: %+v", bad)
	}
}
