package snapshot

import (
	"bytes"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/contracts"
)

func marshalLikeCapture(t *testing.T, c *contracts.Change) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(c); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'})
}

// TestEncoderMatchesEncodingJSON checks that the encoder's bodies are the
// bytes encoding/json writes for the same change (as capture encodes),
// row after row of one batch, across a change of batch (new consistent
// point) and of table shape, and for changes that take the general path.
func TestEncoderMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 11, 23, 10, 0, 0, 123456000, time.UTC)
	cols := []contracts.Column{
		{Name: "id", Type: "bigint", BaseType: "bigint", Key: true},
		{Name: "Name <&>", Type: "text", BaseType: "text"},
		{Name: "amount", Type: "numeric(10,2)", BaseType: "numeric"},
		{Name: "a\"quoted\"", Type: "jsonb", BaseType: "jsonb"},
		{Name: "é", Type: "bytea", BaseType: "bytea"},
		{Name: "B", Type: "boolean", BaseType: "boolean"},
	}
	src := contracts.Source{SourceID: 3, Database: "shop<db>", Schema: "public", Table: "orders & co", LSN: "0/1A2B3C8",
		CommitLSN: "0/1A2B3C8", CommitTime: at, Snapshot: true}
	row := func(id string, extra map[string]string) contracts.Change {
		after := contracts.Row{"id": json.RawMessage(id), "Name <&>": json.RawMessage(`"a <b> & \"c\" \u2028 ` + "\u2029 é\\n" + `"`),
			"amount": json.RawMessage(`"12.50"`), "a\"quoted\"": json.RawMessage(`"{\"x\": [1, 2]}"`), "é": json.RawMessage(`null`),
			"B": json.RawMessage(`true`)}
		for k, v := range extra {
			switch v {
			case "-":
				delete(after, k)
				continue
			case "nil":
				after[k] = nil
				continue
			}
			after[k] = json.RawMessage(v)
		}
		return contracts.Change{V: 1, Op: contracts.OpRead, Source: src, Columns: cols, Key: contracts.Row{"id": json.RawMessage(id)}, After: after}
	}
	src2 := src
	src2.LSN, src2.CommitLSN = "0/1A2B400", "0/1A2B400"
	other := []contracts.Column{{Name: "k1", Type: "text", BaseType: "text", Key: true}, {Name: "k0", Type: "integer", BaseType: "integer", Key: true}}
	changes := []contracts.Change{
		row("1", nil),
		row("2", map[string]string{"amount": `"NaN"`, "é": `"\\xdeadbeef"`}),
		row("3", map[string]string{"B": "-"}),   // a column absent from after
		row("4", map[string]string{"B": "nil"}), // a nil raw value: encoding/json writes null
		row("5", map[string]string{"zz": `1`}),  // a name that is no column: general path
		{V: 1, Op: contracts.OpRead, Source: src2, Columns: cols, Key: contracts.Row{"id": json.RawMessage("6")}, After: contracts.Row{"id": json.RawMessage("6")}},
		{V: 1, Op: contracts.OpRead, Source: src2, Columns: other, Key: contracts.Row{"k1": json.RawMessage(`"x"`), "k0": json.RawMessage(`7`)},
			After: contracts.Row{"k0": json.RawMessage(`7`), "k1": json.RawMessage(`"x"`)}},
		{V: 1, Op: contracts.OpUpdate, Source: src2, Columns: other, Key: contracts.Row{"k1": json.RawMessage(`"x"`), "k0": json.RawMessage(`7`)},
			Before: contracts.Row{"k1": json.RawMessage(`"y"`)}, After: contracts.Row{"k0": json.RawMessage(`7`)}, Unchanged: []string{"k1"}},
		{V: 1, Op: contracts.OpRead, Source: src2, Columns: other},
	}
	e := NewEncoder(9, []int64{4, 2}, 1<<20)
	for i := range changes {
		c := &changes[i]
		m, err := e.Encode(c, []string{"k"})
		if err != nil {
			t.Fatal(err)
		}
		if want := marshalLikeCapture(t, c); !bytes.Equal(m.Data, want) {
			t.Errorf("change %d:\n got %s\nwant %s", i, m.Data, want)
		}
		if got := m.Header.Get(contracts.DestinationsHeader); got != "4,2" {
			t.Errorf("change %d: %s header %q", i, contracts.DestinationsHeader, got)
		}
		if got := m.Header.Get("Nats-Msg-Id"); got != `3:snap:9:["k"]` {
			t.Errorf("change %d: Nats-Msg-Id %q", i, got)
		}
	}
	if m, _ := NewEncoder(9, nil, 0).Encode(&changes[0], []string{"1"}); m.Header.Get(contracts.DestinationsHeader) != "" {
		t.Errorf("untargeted job sets %s", contracts.DestinationsHeader)
	}
	if _, err := NewEncoder(9, nil, 300).Encode(&changes[0], []string{"1"}); err == nil {
		t.Error("a row over max_payload was encoded")
	}
}

// TestKeyJSON checks that KeyJSON (the stored resume point, and part of
// every Nats-Msg-Id) is json.Marshal's encoding whatever the key holds.
func TestKeyJSON(t *testing.T) {
	for _, key := range [][]string{nil, {}, {"1"}, {"42", "abc def"}, {"a\"b"}, {"<tag>&"}, {"é"}, {"tab\there"}, {"x\\y"}, {"\u2028"}, {"\xff"}} {
		want, _ := json.Marshal(key)
		if got := KeyJSON(key); !bytes.Equal(got, want) {
			t.Errorf("KeyJSON(%q) = %s, want %s", key, got, want)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	cols := []contracts.Column{{Name: "id", Type: "bigint", BaseType: "bigint", Key: true}, {Name: "name", Type: "text", BaseType: "text"},
		{Name: "balance", Type: "numeric(12,2)", BaseType: "numeric"}, {Name: "tags", Type: "text[]", BaseType: "text[]"},
		{Name: "seen", Type: "timestamp with time zone", BaseType: "timestamp with time zone"}}
	c := contracts.Change{V: 1, Op: contracts.OpRead, Source: contracts.Source{SourceID: 1, Database: "src", Schema: "public", Table: "accounts",
		LSN: "0/1A2B3C8", CommitLSN: "0/1A2B3C8", CommitTime: time.Now().UTC(), Snapshot: true}, Columns: cols,
		Key: contracts.Row{"id": json.RawMessage("123456")},
		After: contracts.Row{"id": json.RawMessage("123456"), "name": json.RawMessage(`"acct 123456"`), "balance": json.RawMessage(`"61728.00"`),
			"tags": json.RawMessage(`"{t4}"`), "seen": json.RawMessage(`"2024-01-02 10:17:36+00"`)}}
	key := []string{"123456"}
	b.Run("encoder", func(b *testing.B) {
		e := NewEncoder(1, nil, 0)
		for b.Loop() {
			if _, err := e.Encode(&c, key); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		var buf bytes.Buffer
		for b.Loop() {
			buf.Reset()
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(&c); err != nil {
				b.Fatal(err)
			}
			_ = bytes.Clone(buf.Bytes())
			_, _ = json.Marshal(key)
		}
	})
}

// TestEncodeSubjectIsKeysPartition: a row goes to the partition of its
// key among the source's partitions, the subject capture uses for it.
func TestEncodeSubjectIsKeysPartition(t *testing.T) {
	src := contracts.Source{SourceID: 3, Database: "db", Schema: "public", Table: "t", CommitLSN: "0/10", LSN: "0/10", Snapshot: true}
	cols := []contracts.Column{{Name: "id", Type: "bigint", BaseType: "bigint", Key: true}}
	for _, tt := range []struct {
		name       string
		partitions int
	}{{"never set", 0}, {"one", 1}, {"four", 4}, {"sixty-four", 64}} {
		t.Run(tt.name, func(t *testing.T) {
			e := NewEncoder(9, nil, 0)
			if tt.partitions > 0 {
				e.SetPartitions(tt.partitions)
			}
			seen := map[string]bool{}
			for i := range 2000 {
				key := contracts.Row{"id": json.RawMessage(strconv.Itoa(i))}
				c := contracts.Change{V: 1, Op: contracts.OpRead, Source: src, Columns: cols, Key: key, After: key}
				m, err := e.Encode(&c, []string{strconv.Itoa(i)})
				if err != nil {
					t.Fatal(err)
				}
				want := contracts.ChangeSubject(3, "public", "t", contracts.Partition(key, tt.partitions))
				if m.Subject != want {
					t.Fatalf("row %d on %s; want %s", i, m.Subject, want)
				}
				seen[m.Subject] = true
			}
			if want := max(tt.partitions, 1); len(seen) != want {
				t.Errorf("2000 rows went to %d subjects; want %d", len(seen), want)
			}
		})
	}
}
