package cdc

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/contracts"
)

func testMessageChanges(n int) []contracts.Change {
	cols := []contracts.Column{{Name: "id", Type: "bigint", BaseType: "bigint", Key: true}, {Name: "s", Type: "text", BaseType: "text"}}
	out := make([]contracts.Change, n)
	for i := range out {
		id := json.RawMessage(fmt.Sprint(i))
		out[i] = contracts.Change{V: contracts.MessageVersion, Op: contracts.OpCreate, Columns: cols,
			Source: contracts.Source{SourceID: 3, Database: "db", Schema: "public", Table: "t", LSN: contracts.FormatLSN(uint64(100 + i)),
				CommitLSN: "0/200", Seq: int64(i + 1), TxID: 9, CommitTime: time.Date(2026, 12, 7, 1, 2, 3, 4000, time.UTC)},
			Key: contracts.Row{"id": id}, After: contracts.Row{"id": id, "s": json.RawMessage(`"a\"b"`)}}
	}
	return out
}

// TestDecodeMessage: both decoders, fast and through encoding/json (a
// reordered body), give every change of a version 2 message whole, and a
// version 1 body as one change.
func TestDecodeMessage(t *testing.T) {
	changes := testMessageChanges(5)
	body, err := contracts.MessageOf(changes).AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	// The same message with changes before source: not capture's order,
	// so read by encoding/json.
	var generic map[string]json.RawMessage
	if err := json.Unmarshal(body, &generic); err != nil {
		t.Fatal(err)
	}
	reordered := []byte(`{"changes":` + string(generic["changes"]) + `,"v":2,"source":` + string(generic["source"]) +
		`,"columns":` + string(generic["columns"]) + `}`)
	v1 := changes[0]
	v1.V = contracts.EnvelopeVersion
	v1body, err := v1.AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		body []byte
		want []contracts.Change
	}{
		{"v2", body, changes},
		{"v2 reordered", reordered, changes},
		{"v1", v1body, []contracts.Change{v1}},
	} {
		for _, d := range []*Decoder{nil, NewDecoder()} {
			var (
				got  []contracts.Change
				errs []error
				err  error
			)
			if d == nil {
				got, errs, err = DecodeMessage(tc.body, nil, nil)
			} else {
				got, errs, err = d.DecodeMessage(tc.body, nil, nil)
			}
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if len(errs) != len(got) {
				t.Fatalf("%s: %d errors for %d changes", tc.name, len(errs), len(got))
			}
			for i, e := range errs {
				if e != nil {
					t.Fatalf("%s: change %d: %v", tc.name, i, e)
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("%s (decoder %v):\n got %+v\nwant %+v", tc.name, d != nil, got, tc.want)
			}
		}
	}
}

// TestDecodeMessageBadChange: one change that fails Check is reported
// alone; the others of its message are read.
func TestDecodeMessageBadChange(t *testing.T) {
	changes := testMessageChanges(3)
	changes[1].Key = nil
	body, err := contracts.MessageOf(changes).AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	got, errs, err := NewDecoder().DecodeMessage(body, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || errs[0] != nil || errs[2] != nil || errs[1] == nil || !strings.Contains(errs[1].Error(), "without key") {
		t.Fatalf("errors %v for %d changes: want only the second to fail for its key", errs, len(got))
	}
	if _, err := Decode(body); err == nil || !strings.Contains(err.Error(), "several changes") {
		t.Fatalf("Decode of a message of 3: %v, want ErrNotOneChange", err)
	}
	if _, _, err := DecodeMessage([]byte(`{"v":2,"source":{},"changes":[`), nil, nil); err == nil {
		t.Fatal("truncated body: want an error")
	}
}
