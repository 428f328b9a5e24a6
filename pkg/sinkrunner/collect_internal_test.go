package sinkrunner

import (
	"encoding/json"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
)

// bodyMsg is a held message as heldVersions reads it: its body alone.
type bodyMsg struct {
	jetstream.Msg
	data []byte
}

func (m bodyMsg) Data() []byte { return m.data }

// TestHeldVersionsMessages: the bound tombstone collection takes from the
// held messages counts every valid change of a version 2 message, not only
// messages of one change, and skips an invalid one.
func TestHeldVersionsMessages(t *testing.T) {
	t.Parallel()
	mk := func(table string, commitLSN uint64, seq int64, id int) contracts.Change {
		key := contracts.Row{"id": json.RawMessage(string(rune('0' + id)))}
		return contracts.Change{V: contracts.MessageVersion, Op: contracts.OpDelete,
			Source:  contracts.Source{SourceID: 1, Schema: "public", Table: table, CommitLSN: contracts.FormatLSN(commitLSN), Seq: seq},
			Columns: []contracts.Column{{Name: "id", Type: "integer", BaseType: "integer", Key: true}}, Key: key}
	}
	several := []contracts.Change{mk("t", 0x300, 1, 1), mk("t", 0x300, 2, 2), mk("t", 0x300, 3, 3)}
	several[0].Key = nil // invalid: holds back nothing
	body, err := contracts.MessageOf(several).AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	v1 := mk("u", 0x100, 4, 4)
	v1.V = contracts.EnvelopeVersion
	v1body, err := v1.AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &Runner{held: holder{held: map[*batch]struct{}{}}}
	b := &batch{}
	r.held.hold(b)
	r.held.append(b, bodyMsg{data: body})
	r.held.append(b, bodyMsg{data: v1body})
	r.held.append(b, bodyMsg{data: []byte("{not json")})
	got, n := r.heldVersions()
	want := map[string]contracts.Version{"public.t": {LSN: 0x300, Seq: 2}, "public.u": {LSN: 0x100, Seq: 4}}
	if n != 3 || len(got) != 2 || got["public.t"] != want["public.t"] || got["public.u"] != want["public.u"] {
		t.Fatalf("held versions %v of %d messages; want %v of 3", got, n, want)
	}
}
