package api

import (
	"encoding/json"
	"testing"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/dlq"
)

// TestViewEntryOneChangeMessage: the sink dead-letters one change of a
// version 2 message of several as a version 2 message of that change
// alone; the view shows it as a change, like a version 1 letter.
func TestViewEntryOneChangeMessage(t *testing.T) {
	t.Parallel()
	c := contracts.Change{V: contracts.MessageVersion, Op: contracts.OpUpdate,
		Source:  contracts.Source{SourceID: 3, Schema: "public", Table: "orders", CommitLSN: "0/16B3748", LSN: "0/16B3700", Seq: 4},
		Columns: []contracts.Column{{Name: "id", Type: "text", BaseType: "text", Key: true}, {Name: "name", Type: "text", BaseType: "text"}},
		Key:     contracts.Row{"id": json.RawMessage(`"7"`)},
		After:   contracts.Row{"id": json.RawMessage(`"7"`), "name": json.RawMessage(`"bad"`)},
	}
	one, err := contracts.MessageOf([]contracts.Change{c}).AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	v := viewEntry(dlq.Entry{Change: one, Table: "public.orders"})
	got, ok := v.Change.(contracts.Change)
	if v.Op != "u" || string(v.Key["id"]) != `"7"` || !ok || got.Source.Seq != 4 || got.Source.LSN != "0/16B3700" ||
		string(got.After["name"]) != `"bad"` || v.Truncated {
		t.Fatalf("view of a one-change v2 letter = %+v", v)
	}
	two, err := contracts.MessageOf([]contracts.Change{c, c}).AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	if v := viewEntry(dlq.Entry{Change: two}); v.Op != "" || v.Change != string(two) {
		t.Fatalf("view of a letter of two changes = %+v, want its text", v)
	}
}
