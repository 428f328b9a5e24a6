package snapshot

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/natsx"
)

// marshalLikeCapture is encoding/json without HTML escaping, without the
// newline: what the wire format's encoders write.
func marshalLikeCapture(t testing.TB, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'})
}

// rowsOf decodes a message the encoder made, failing unless it is a
// version 2 message.
func rowsOf(t testing.TB, m *nats.Msg) []contracts.Change {
	t.Helper()
	if !bytes.HasPrefix(m.Data, []byte(`{"v":2,`)) {
		t.Fatalf("not a version 2 message: %.80s", m.Data)
	}
	msg, err := contracts.DecodeMessage(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	var out []contracts.Change
	for _, c := range msg.All() {
		out = append(out, c)
	}
	return out
}

// TestEncoderMatchesContracts checks that the encoder's bodies are the
// bytes contracts writes for the same changes (AppendMessageHead,
// AppendEntry, CloseMessage, as capture encodes) and encoding/json for
// the same contracts.Message: rows of one batch in one message, a new
// message for a new consistent point or table shape, and changes that
// take the general path.
func TestEncoderMatchesContracts(t *testing.T) {
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
		row("4", map[string]string{"B": "nil"}), // a nil raw value: written null
		row("5", map[string]string{"zz": `1`}),  // a name that is no column: general path
		{V: 1, Op: contracts.OpRead, Source: src2, Columns: cols, Key: contracts.Row{"id": json.RawMessage("6")}, After: contracts.Row{"id": json.RawMessage("6")}},
		{V: 1, Op: contracts.OpRead, Source: src2, Columns: other, Key: contracts.Row{"k1": json.RawMessage(`"x"`), "k0": json.RawMessage(`7`)},
			After: contracts.Row{"k0": json.RawMessage(`7`), "k1": json.RawMessage(`"x"`)}},
		{V: 1, Op: contracts.OpUpdate, Source: src2, Columns: other, Key: contracts.Row{"k1": json.RawMessage(`"y"`), "k0": json.RawMessage(`7`)},
			Before: contracts.Row{"k1": json.RawMessage(`"y"`)}, After: contracts.Row{"k0": json.RawMessage(`7`)}, Unchanged: []string{"k1"}},
		{V: 1, Op: contracts.OpRead, Source: src2, Columns: other},
	}
	keys := make([][]string, len(changes))
	for i := range keys {
		keys[i] = []string{"k" + strconv.Itoa(i)}
	}
	groups := [][]int{{0, 1, 2, 3, 4}, {5}, {6, 7, 8}} // a message per source block and columns
	e := NewEncoder(9, []int64{4, 2}, 1<<20)
	for i := range changes {
		if err := e.Add(&changes[i], keys[i]); err != nil {
			t.Fatal(err)
		}
	}
	msgs := e.Flush()
	if len(msgs) != len(groups) {
		t.Fatalf("%d messages, want %d", len(msgs), len(groups))
	}
	for i, g := range groups {
		var in []contracts.Change
		sum := keySumStart
		for _, j := range g {
			in = append(in, changes[j])
			sum = keySum(sum, keys[j])
		}
		want, err := contracts.MessageOf(in).AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		m := msgs[i]
		if !bytes.Equal(m.Data, want) {
			t.Errorf("message %d:\n got %s\nwant %s", i, m.Data, want)
		}
		if j := marshalLikeCapture(t, contracts.MessageOf(in)); !bytes.Equal(m.Data, j) {
			t.Errorf("message %d differs from encoding/json:\n got %s\nwant %s", i, m.Data, j)
		}
		if got := m.Header.Get(contracts.DestinationsHeader); got != "4,2" {
			t.Errorf("message %d: %s header %q", i, contracts.DestinationsHeader, got)
		}
		wantID := fmt.Sprintf(`3:snap:9:0:["k%d"]:%d:%016x`, g[0], len(g), sum)
		if got := m.Header.Get("Nats-Msg-Id"); got != wantID {
			t.Errorf("message %d: Nats-Msg-Id %q, want %q", i, got, wantID)
		}
		if got := len(rowsOf(t, m)); got != len(g) {
			t.Errorf("message %d decodes to %d changes, want %d", i, got, len(g))
		}
	}
	if len(e.Flush()) != 0 {
		t.Error("a second Flush returned messages")
	}
	e2 := NewEncoder(9, nil, 0)
	if err := e2.Add(&changes[0], keys[0]); err != nil {
		t.Fatal(err)
	}
	if m := e2.Flush(); m[0].Header.Get(contracts.DestinationsHeader) != "" {
		t.Errorf("untargeted job sets %s", contracts.DestinationsHeader)
	}
	bad := row("1", map[string]string{"amount": ""})
	if err := NewEncoder(9, nil, 0).Add(&bad, keys[0]); err == nil || !strings.Contains(err.Error(), "amount") {
		t.Errorf("a row with an empty value: %v", err)
	}
}

// snapRows returns n snapshot rows of table t with a pad-byte text column,
// read at consistent point cp, and their keys.
func snapRows(n, pad int, cp string, at time.Time) ([]contracts.Change, [][]string) {
	src := contracts.Source{SourceID: 3, Database: "db", Schema: "public", Table: "t", LSN: cp, CommitLSN: cp, CommitTime: at, Snapshot: true}
	cols := []contracts.Column{{Name: "id", Type: "bigint", BaseType: "bigint", Key: true}, {Name: "pad", Type: "text", BaseType: "text"}}
	padValue := json.RawMessage(`"` + strings.Repeat("x", pad) + `"`)
	changes := make([]contracts.Change, n)
	keys := make([][]string, n)
	for i := range changes {
		id := json.RawMessage(strconv.Itoa(i + 1))
		changes[i] = contracts.Change{V: 1, Op: contracts.OpRead, Source: src, Columns: cols, Key: contracts.Row{"id": id},
			After: contracts.Row{"id": id, "pad": padValue}}
		keys[i] = []string{strconv.Itoa(i + 1)}
	}
	return changes, keys
}

func encodeAll(t testing.TB, e *Encoder, changes []contracts.Change, keys [][]string) []*nats.Msg {
	t.Helper()
	for i := range changes {
		if err := e.Add(&changes[i], keys[i]); err != nil {
			t.Fatal(err)
		}
	}
	return e.Flush()
}

// TestEncoderChunks: a batch's rows of one partition are cut at
// ChunkChanges rows or ChunkBytes bytes (or less under a small
// max_payload), every row once and in order; a row above the limit is a
// message alone, and one above max_payload is refused.
func TestEncoderChunks(t *testing.T) {
	at := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	check := func(t *testing.T, msgs []*nats.Msg, n, limit int) []int {
		t.Helper()
		next := 1
		var sizes []int
		for i, m := range msgs {
			rows := rowsOf(t, m)
			if len(rows) > contracts.ChunkChanges || (len(rows) > 1 && len(m.Data) > limit) {
				t.Errorf("message %d: %d rows, %d bytes", i, len(rows), len(m.Data))
			}
			for _, c := range rows {
				if string(c.Key["id"]) != strconv.Itoa(next) || c.Op != contracts.OpRead || !c.Source.Snapshot {
					t.Fatalf("message %d: row %s %s, want id %d", i, c.Key["id"], c.Op, next)
				}
				next++
			}
			sizes = append(sizes, len(rows))
		}
		if next != n+1 {
			t.Errorf("%d rows out of %d", next-1, n)
		}
		return sizes
	}
	t.Run("rows", func(t *testing.T) {
		changes, keys := snapRows(2500, 10, "0/10", at)
		sizes := check(t, encodeAll(t, NewEncoder(1, nil, 1<<20), changes, keys), 2500, contracts.ChunkBytes)
		if fmt.Sprint(sizes) != "[1024 1024 452]" {
			t.Errorf("rows per message %v", sizes)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		changes, keys := snapRows(1000, 1000, "0/10", at)
		msgs := encodeAll(t, NewEncoder(1, nil, 1<<20), changes, keys)
		check(t, msgs, 1000, contracts.ChunkBytes)
		// ~1 MiB of rows of ~1 KiB: 5 messages, all but the last full
		// but for a row and the widest LSNs' allowance (13 bytes a row).
		if len(msgs) != 5 || len(msgs[0].Data) < contracts.ChunkBytes-8<<10 {
			t.Errorf("%d messages, the first of %d bytes: want 5, the first near %d", len(msgs), len(msgs[0].Data), contracts.ChunkBytes)
		}
	})
	t.Run("small max_payload", func(t *testing.T) {
		changes, keys := snapRows(1000, 1000, "0/10", at)
		check(t, encodeAll(t, NewEncoder(1, nil, 64<<10), changes, keys), 1000, 64<<10-natsx.PayloadSlack)
	})
	t.Run("a row above the limit is alone", func(t *testing.T) {
		changes, keys := snapRows(3, 10, "0/10", at)
		changes[1].After = contracts.Row{"id": changes[1].Key["id"], "pad": json.RawMessage(`"` + strings.Repeat("y", contracts.ChunkBytes) + `"`)}
		sizes := check(t, encodeAll(t, NewEncoder(1, nil, 1<<20), changes, keys), 3, contracts.ChunkBytes)
		if fmt.Sprint(sizes) != "[1 1 1]" {
			t.Errorf("rows per message %v", sizes)
		}
		if err := NewEncoder(1, nil, 200<<10).Add(&changes[1], keys[1]); err == nil || !strings.Contains(err.Error(), "max_payload") {
			t.Errorf("a row over max_payload: %v", err)
		}
	})
}

// TestEncoderSplitIgnoresConsistentPoint: the same rows read at another
// consistent point and time (a batch re-read after a crash) are cut into
// the same messages with the same ids, though their LSNs are longer.
func TestEncoderSplitIgnoresConsistentPoint(t *testing.T) {
	a, ka := snapRows(3000, 300, "0/10", time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))
	b, kb := snapRows(3000, 300, "1F/FFFFFF10", time.Date(2026, 12, 7, 12, 5, 1, 123456789, time.UTC))
	ma := encodeAll(t, NewEncoder(1, nil, 1<<20), a, ka)
	mb := encodeAll(t, NewEncoder(1, nil, 1<<20), b, kb)
	if len(ma) < 3 || len(ma) != len(mb) {
		t.Fatalf("%d and %d messages", len(ma), len(mb))
	}
	for i := range ma {
		if x, y := ma[i].Header.Get("Nats-Msg-Id"), mb[i].Header.Get("Nats-Msg-Id"); x != y {
			t.Errorf("message %d: ids %s and %s", i, x, y)
		}
	}
}

// TestMsgIDNamesTheKeySet: messages starting at the same key but holding
// other rows have other ids.
func TestMsgIDNamesTheKeySet(t *testing.T) {
	ids := map[string]bool{}
	for _, set := range [][][]string{{{"1"}, {"2"}}, {{"1"}, {"3"}}, {{"1"}, {"2"}, {"3"}}, {{"1", "2"}}, {{"12"}}, {{"1"}}} {
		sum := keySumStart
		for _, k := range set {
			sum = keySum(sum, k)
		}
		id := MsgID(3, 9, 1, set[0], len(set), sum)
		if ids[id] {
			t.Errorf("key set %v: id %s taken", set, id)
		}
		ids[id] = true
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

// BenchmarkEncode: ns/op is per row, a batch of 10000 rows flushed at a
// time, on one partition and on four. "contracts" is the general encoder
// of an entry alone, for comparison.
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
	encode := func(b *testing.B, partitions int) {
		e := NewEncoder(1, nil, 0)
		e.SetPartitions(partitions)
		n := 0
		for b.Loop() {
			if err := e.Add(&c, key); err != nil {
				b.Fatal(err)
			}
			if n++; n == 10000 {
				e.Flush()
				n = 0
			}
		}
		e.Flush()
	}
	b.Run("encoder", func(b *testing.B) { encode(b, 1) })
	b.Run("encoder_p4", func(b *testing.B) { encode(b, 4) })
	b.Run("contracts", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf = contracts.AppendEntry(buf[:0], &c)
		}
	})
}

// TestEncodeSubjectIsKeysPartition: a row goes to the partition of its
// key among the source's partitions, the subject capture uses for it, in
// a message of that partition's rows only.
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
			for i := range 2000 {
				key := contracts.Row{"id": json.RawMessage(strconv.Itoa(i))}
				c := contracts.Change{V: 1, Op: contracts.OpRead, Source: src, Columns: cols, Key: key, After: key}
				if err := e.Add(&c, []string{strconv.Itoa(i)}); err != nil {
					t.Fatal(err)
				}
			}
			seen, rows := map[string]bool{}, 0
			for _, m := range e.Flush() {
				for _, c := range rowsOf(t, m) {
					want := contracts.ChangeSubject(3, "public", "t", contracts.Partition(c.Key, tt.partitions))
					if m.Subject != want {
						t.Fatalf("row %s on %s; want %s", c.Key["id"], m.Subject, want)
					}
					rows++
				}
				seen[m.Subject] = true
			}
			if want := max(tt.partitions, 1); len(seen) != want || rows != 2000 {
				t.Errorf("2000 rows went to %d subjects (%d rows); want %d", len(seen), rows, want)
			}
		})
	}
}
