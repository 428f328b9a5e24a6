package contracts

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/pkg/benchcpu"
)

// stdJSON is the reference AppendJSON must equal: encoding/json with HTML
// escaping off, as capture used before AppendJSON.
func stdJSON(t testing.TB, c *Change) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(c); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})
}

func checkSame(t *testing.T, name string, c *Change) {
	t.Helper()
	got, err := c.AppendJSON(nil)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if want := stdJSON(t, c); !bytes.Equal(got, want) {
		t.Fatalf("%s: AppendJSON differs from encoding/json\n got %s\nwant %s", name, got, want)
	}
}

// TestAppendJSONEqualsEncodingJSON: every golden event, and changes with
// every escaping case, encode to the same bytes as encoding/json.
func TestAppendJSONEqualsEncodingJSON(t *testing.T) {
	files, _ := filepath.Glob("testdata/golden/*.json")
	if len(files) == 0 {
		t.Fatal("no golden events")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var c Change
		if err := json.Unmarshal(data, &c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		// Golden files may be indented; values must be compact for
		// AppendJSON (the decoder's are), so compact them first.
		for _, r := range []Row{c.Key, c.Before, c.After} {
			for k, v := range r {
				var b bytes.Buffer
				if err := json.Compact(&b, v); err != nil {
					t.Fatal(err)
				}
				r[k] = b.Bytes()
			}
		}
		checkSame(t, filepath.Base(f), &c)
	}

	hostile := []string{"", "plain", `quote " and \ backslash`, "\b\f\n\r\t\x00\x01\x1f\x7f", "<html> & co",
		"caf\xc3\xa9", "bad \xff utf8 \xc3", "line\u2028sep\u2029", "emoji 😀", "\xed\xa0\x80 surrogate"}
	for i, s := range hostile {
		str, _ := json.Marshal(s)
		c := &Change{V: 1, Op: OpUpdate, Source: Source{SourceID: 7, Database: s, Schema: "public", Table: s,
			LSN: "0/1", CommitLSN: "0/2", Seq: int64(i), TxID: uint32(i), CommitTime: time.Date(2026, 1, 2, 3, 4, 5, i*1000, time.UTC),
			Snapshot: i%2 == 0},
			Columns: []Column{{Name: s, Type: "text", BaseType: "text", Key: true}, {Name: "n", Type: "integer", BaseType: "integer", Attnum: 7,
				ExistingValue: RawValue(` { "a" : [1, 2] } `)}},
			Key: Row{s: str}, Before: Row{}, After: Row{s: str, "n": json.RawMessage("12"), "z": nil, "a": json.RawMessage("true")},
			Unchanged: []string{s, "x"}}
		checkSame(t, "hostile "+s, c)
	}
	checkSame(t, "empty", &Change{})
}

// TestAppendJSONRandomRows compares random rows of random strings.
func TestAppendJSONRandomRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	randStr := func() string {
		b := make([]byte, rng.IntN(12))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return string(b)
	}
	for i := 0; i < 2000; i++ {
		row := Row{}
		for j := rng.IntN(6); j > 0; j-- {
			v, _ := json.Marshal(randStr())
			row[randStr()] = v
		}
		c := &Change{V: 1, Op: OpCreate, Source: Source{Table: randStr(), CommitTime: time.Unix(rng.Int64N(1<<33), rng.Int64N(1e9))},
			After: row, Key: row}
		checkSame(t, "random", c)
	}
}

func TestAppendJSONRefusesWhatEncodingJSONRefuses(t *testing.T) {
	c := &Change{Source: Source{CommitTime: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}
	if _, err := c.AppendJSON(nil); err == nil {
		t.Fatal("year 10000: want an error, as encoding/json")
	}
	c = &Change{Columns: []Column{{Name: "x", ExistingValue: "{bad"}}}
	if _, err := c.AppendJSON(nil); err == nil {
		t.Fatal("invalid existing_value: want an error")
	}
}

func benchChange() *Change {
	cols := []Column{{Name: "id", Type: "bigint", BaseType: "bigint", Key: true}, {Name: "ver", Type: "integer", BaseType: "integer"},
		{Name: "qty", Type: "integer", BaseType: "integer"}, {Name: "amount", Type: "bigint", BaseType: "bigint"},
		{Name: "price", Type: "double precision", BaseType: "double precision"}, {Name: "note", Type: "text", BaseType: "text"},
		{Name: "ts", Type: "timestamp with time zone", BaseType: "timestamp with time zone"}, {Name: "attrs", Type: "jsonb", BaseType: "jsonb"}}
	after := Row{"id": json.RawMessage("123456"), "ver": json.RawMessage("1"), "qty": json.RawMessage("42"),
		"amount": json.RawMessage("123456001"), "price": json.RawMessage(`"34.56"`),
		"note": json.RawMessage(`"order 123456 v1 shipped to warehouse north-east"`),
		"ts":   json.RawMessage(`"2026-01-01 00:02:03.456+00"`), "attrs": json.RawMessage(`"{\"sku\": \"SKU-456\", \"qty\": 1}"`)}
	return &Change{V: 1, Op: OpCreate, Source: Source{SourceID: 1, Database: "src", Schema: "public", Table: "orders",
		LSN: "0/1D78E70", CommitLSN: "0/1D79000", Seq: 17, TxID: 750, CommitTime: time.Now().UTC()},
		Columns: cols, Key: Row{"id": json.RawMessage("123456")}, After: after}
}

// BenchmarkEncodeChange/std is what capture paid per change before
// AppendJSON; /append what it pays now (the same bytes).
func BenchmarkEncodeChange(b *testing.B) {
	c := benchChange()
	b.Run("std", func(b *testing.B) {
		var buf bytes.Buffer
		b.ReportAllocs()
		for b.Loop() {
			buf.Reset()
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(c); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("append", func(b *testing.B) {
		var dst []byte
		b.ReportAllocs()
		defer benchcpu.PerOp(b)()
		for b.Loop() {
			var err error
			if dst, err = c.AppendJSON(dst[:0]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestFormatLSNEqualsPrintf: the append form equals the %X/%X it replaced.
func TestFormatLSNEqualsPrintf(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 10000; i++ {
		v := rng.Uint64() >> uint(rng.IntN(64))
		if got, want := FormatLSN(v), fmt.Sprintf("%X/%X", uint32(v>>32), uint32(v)); got != want {
			t.Fatalf("FormatLSN(%d) = %q, want %q", v, got, want)
		}
	}
}
