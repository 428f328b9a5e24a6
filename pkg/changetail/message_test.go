package changetail

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/rosettacdc/rosetta/contracts"
)

// threeChanges is a version 2 message body of three changes of one
// transaction: an insert, an update and a delete.
func threeChanges(t *testing.T) (*contracts.Message, []byte) {
	t.Helper()
	a, b, c := update(), update(), update()
	a.Op, a.Before, a.Source.Seq, a.Source.LSN = contracts.OpCreate, nil, 1, "0/A"
	a.Key, a.After = contracts.Row{"id": json.RawMessage("4")}, contracts.Row{"id": json.RawMessage("4"), "title": json.RawMessage(`"<b>&"`)}
	b.Source.Seq, b.Source.LSN = 2, "0/B"
	c.Op, c.After, c.Source.Seq, c.Source.LSN = contracts.OpDelete, nil, 3, "0/C"
	c.Before = contracts.Row{"id": json.RawMessage("5")}
	m := contracts.MessageOf([]contracts.Change{a, b, c})
	data, err := m.AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	return m, data
}

// TestTextLinesOnePerChange: a version 2 message prints one line per
// change, each with the message's stream sequence and its index; a
// version 1 message one line with the sequence alone.
func TestTextLinesOnePerChange(t *testing.T) {
	_, data := threeChanges(t)
	got := TextLines(data, 17)
	want := []string{
		`2026-11-23T10:00:00.000000Z  c  public.orders  id=4  id,title  #17.0`,
		`2026-11-23T10:00:00.000000Z  u  public.orders  id=5  title  #17.1`,
		`2026-11-23T10:00:00.000000Z  d  public.orders  id=5  #17.2`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	v1 := update()
	body, err := v1.AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := TextLines(body, 9); len(got) != 1 || !strings.HasSuffix(got[0], "  title  #9") {
		t.Fatalf("a version 1 message: %q", got)
	}
	if got := TextLines([]byte(`{"v":7}`), 3); len(got) != 1 || !strings.Contains(got[0], "#3  (not a change message: ") {
		t.Fatalf("an unknown version: %q", got)
	}
}

// TestJSONLinesAreVersion1Changes: each line of `tail --json` is one
// whole change as a version 1 event, whatever the message's version.
func TestJSONLinesAreVersion1Changes(t *testing.T) {
	m, data := threeChanges(t)
	lines := JSONLines(data)
	if len(lines) != len(m.Changes) {
		t.Fatalf("%d lines for %d changes:\n%s", len(lines), len(m.Changes), strings.Join(lines, "\n"))
	}
	for i, l := range lines {
		if strings.Contains(l, "\n") || !strings.HasPrefix(l, `{"v":1,"op":`) {
			t.Fatalf("line %d is not a one-line version 1 change: %s", i, l)
		}
		var got contracts.Change
		if err := json.Unmarshal([]byte(l), &got); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		want := m.Change(i)
		want.V = contracts.EnvelopeVersion
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("line %d:\n got %+v\nwant %+v", i, got, want)
		}
	}
	if !strings.Contains(lines[0], `"<b>&"`) {
		t.Fatalf("values are HTML-escaped: %s", lines[0])
	}
	// A version 1 body prints as the same change.
	v1 := update()
	body, err := v1.AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := JSONLines(body); len(got) != 1 || got[0] != string(body) {
		t.Fatalf("a version 1 body: %q, want %s", got, body)
	}
	if got := JSONLines([]byte("{\n\"v\": 9\n}")); len(got) != 1 || got[0] != `{"v":9}` {
		t.Fatalf("a body that is not a change message: %q", got)
	}
}

// TestEventsOnePerChange: the API's events of a version 2 message, one
// per change, each knowing its index and its message's size.
func TestEventsOnePerChange(t *testing.T) {
	_, data := threeChanges(t)
	evs := Events(data, 40)
	if len(evs) != 3 {
		t.Fatalf("%d events, want 3", len(evs))
	}
	for i, ev := range evs {
		if ev.Seq != 40 || ev.Index != i || ev.MessageChanges != 3 || ev.Error != "" {
			t.Fatalf("event %d: %+v", i, ev)
		}
		if id := "40." + string(rune('0'+i)); ev.ID() != id || !strings.HasSuffix(ev.Line, "#"+id) {
			t.Fatalf("event %d: id %q, line %q, want %s", i, ev.ID(), ev.Line, id)
		}
	}
	if evs[2].Op != "d" || !reflect.DeepEqual(evs[2].Values, []Value{{"id", "5"}}) {
		t.Fatalf("the delete: %+v", evs[2])
	}
	if one := Events(mustV1(t), 8); len(one) != 1 || one[0].ID() != "8" {
		t.Fatalf("a version 1 change: %+v", one)
	}
}

func mustV1(t *testing.T) []byte {
	t.Helper()
	c := update()
	body, err := c.AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	return body
}
