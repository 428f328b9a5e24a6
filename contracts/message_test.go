package contracts

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

func stdMessageJSON(t testing.TB, m *Message) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})
}

// messageChanges returns n changes of one transaction's table, with random
// rows and every op.
func messageChanges(rng *rand.Rand, n int) []Change {
	cols := []Column{{Name: "id", Type: "bigint", BaseType: "bigint", Key: true, Attnum: 1},
		{Name: "s", Type: "text", BaseType: "text", Attnum: 2, ExistingValue: `"x"`}}
	src := Source{SourceID: 3, Database: "shop", Schema: "pub lic", Table: `t"1`, CommitLSN: "0/1A2B4F0", TxID: 771,
		CommitTime: time.Date(2026, 11, 23, 10, 0, 0, 123456000, time.UTC)}
	ops := []Op{OpCreate, OpUpdate, OpDelete, OpTruncate}
	out := make([]Change, n)
	for i := range out {
		s := src
		s.Seq, s.LSN = int64(i+1), FormatLSN(uint64(0x1A2B000+i))
		str, _ := json.Marshal(fmt.Sprintf("v%d \u2028 <%c>", rng.IntN(1000), rune(rng.IntN(0x7f))))
		id := json.RawMessage(fmt.Sprint(rng.IntN(100)))
		c := Change{V: MessageVersion, Op: ops[rng.IntN(len(ops))], Source: s, Columns: cols}
		switch c.Op {
		case OpCreate:
			c.Key, c.After = Row{"id": id}, Row{"id": id, "s": str}
		case OpUpdate:
			c.Key, c.After, c.Before, c.Unchanged = Row{"id": id}, Row{"id": id}, Row{"id": json.RawMessage("7")}, []string{"s"}
		case OpDelete:
			c.Key, c.Before = Row{"id": id}, Row{"id": id}
		}
		out[i] = c
	}
	return out
}

// TestMessageRoundTrip: a message of every op encodes to the bytes
// encoding/json writes for it, and DecodeMessage gives back each change
// whole.
func TestMessageRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{1, 2, 17, 300} {
		changes := messageChanges(rng, n)
		m := MessageOf(changes)
		got, err := m.AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := stdMessageJSON(t, m); !bytes.Equal(got, want) {
			t.Fatalf("n=%d: AppendJSON differs from encoding/json\n got %s\nwant %s", n, got, want)
		}
		// The incremental form capture uses writes the same bytes.
		inc, err := AppendMessageHead(nil, &changes[0])
		if err != nil {
			t.Fatal(err)
		}
		for i := range changes {
			if i > 0 {
				inc = append(inc, ',')
			}
			inc = AppendEntry(inc, &changes[i])
		}
		if inc = CloseMessage(inc); !bytes.Equal(inc, got) {
			t.Fatalf("n=%d: incremental encoding differs\n got %s\nwant %s", n, inc, got)
		}
		back, err := DecodeMessage(got)
		if err != nil {
			t.Fatal(err)
		}
		var i int
		for j, c := range back.All() {
			if j != i {
				t.Fatalf("index %d, want %d", j, i)
			}
			if !reflect.DeepEqual(c, changes[i]) {
				t.Fatalf("n=%d change %d:\n got %+v\nwant %+v", n, i, c, changes[i])
			}
			i++
		}
		if i != n {
			t.Fatalf("decoded %d changes, want %d", i, n)
		}
	}
}

// TestDecodeMessageV1: a version 1 body is a message of its one change.
func TestDecodeMessageV1(t *testing.T) {
	c := messageChanges(rand.New(rand.NewPCG(5, 6)), 1)[0]
	c.V = EnvelopeVersion
	body, err := c.AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := DecodeMessage(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Changes) != 1 {
		t.Fatalf("%d changes, want 1", len(m.Changes))
	}
	got := m.Change(0)
	got.V = EnvelopeVersion
	if !reflect.DeepEqual(got, c) {
		t.Fatalf("got %+v\nwant %+v", got, c)
	}
}

func TestDecodeMessageRefuses(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"v":3}`, "unknown envelope version 3"},
		{`{"v":2,"source":{},"changes":[]}`, "no changes"},
		{`{"v":2,"changes":{}}`, "decode change message v2"},
		{`nope`, "decode change message"},
	} {
		if _, err := DecodeMessage([]byte(tc.body)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.body, err, tc.want)
		}
	}
}

func TestMessageID(t *testing.T) {
	for _, tc := range []struct {
		schema, table string
		part, chunk   int
		want          string
	}{
		{"public", "orders", 0, 0, "3:0/1A:public.orders:0:0"},
		{"my.schema", "a:b", 5, 12, "3:0/1A:my%2Eschema.a%3Ab:5:12"},
	} {
		if got := MessageID(3, "0/1A", tc.schema, tc.table, tc.part, tc.chunk); got != tc.want {
			t.Errorf("MessageID(%q,%q,%d,%d) = %q, want %q", tc.schema, tc.table, tc.part, tc.chunk, got, tc.want)
		}
	}
}

func TestSameMessage(t *testing.T) {
	cs := messageChanges(rand.New(rand.NewPCG(7, 8)), 2)
	if !SameMessage(&cs[0], &cs[1]) {
		t.Fatal("two changes of one table and transaction: want the same message")
	}
	other := cs[1]
	other.Source.CommitLSN = "0/FF"
	if SameMessage(&cs[0], &other) {
		t.Fatal("another transaction: want another message")
	}
	other = cs[1]
	other.Columns = append([]Column(nil), cs[1].Columns[:1]...)
	if SameMessage(&cs[0], &other) {
		t.Fatal("other columns: want another message")
	}
}
