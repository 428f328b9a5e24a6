package cdc

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/contracts"
)

// sameAsUnmarshal fails when decodeFast accepts data and its result is not
// json.Unmarshal's, or accepts what json.Unmarshal rejects; the same with
// dec (which has decoded earlier messages: its caches are hit), with a new
// Decoder, and with dec again (now surely from its caches).
func sameAsUnmarshal(t *testing.T, dec *Decoder, data []byte) (fast bool) {
	t.Helper()
	var want contracts.Change
	werr := json.Unmarshal(data, &want)
	got, ok := decodeFast(data, nil)
	for i, d := range []*Decoder{dec, NewDecoder(), dec} {
		dgot, dok := decodeFast(data, d)
		if dok != ok || !reflect.DeepEqual(dgot, got) {
			t.Fatalf("decodeFast with Decoder %d gives %v %#v, without %v %#v, on\n%s", i, dok, dgot, ok, got, data)
		}
	}
	if !ok {
		return false
	}
	if werr != nil {
		t.Fatalf("decodeFast accepted what json.Unmarshal rejects (%v):\n%s", werr, data)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decodeFast differs from json.Unmarshal on\n%s\n got %#v\nwant %#v", data, got, want)
	}
	return true
}

func randomChange(rng *rand.Rand) *contracts.Change {
	str := func() string {
		b := make([]rune, rng.IntN(10))
		alphabet := []rune("ab c_é😀<>&")
		if rng.IntN(10) == 0 {
			alphabet = []rune("ab c\"\\\n\x01é😀<>&\u2028") // escapes: left to json.Unmarshal
		}
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		if rng.IntN(20) == 0 {
			return string(b) + "\xff" // invalid UTF-8
		}
		return string(b)
	}
	val := func() json.RawMessage {
		switch rng.IntN(5) {
		case 0:
			return json.RawMessage("null")
		case 1:
			return json.RawMessage("-12")
		case 2:
			return json.RawMessage("true")
		default:
			v, _ := json.Marshal(str())
			return v
		}
	}
	row := func() contracts.Row {
		if rng.IntN(4) == 0 {
			return nil
		}
		r := contracts.Row{}
		for i := rng.IntN(5); i > 0; i-- {
			r[str()] = val()
		}
		return r
	}
	c := &contracts.Change{V: 1, Op: contracts.OpUpdate, Source: contracts.Source{SourceID: rng.Int64N(100), Database: str(),
		Schema: "public", Table: str(), LSN: "0/1", CommitLSN: "1/2", Seq: rng.Int64N(1000), TxID: rng.Uint32(),
		CommitTime: time.Unix(rng.Int64N(1<<33), rng.Int64N(1e9)).UTC(), Snapshot: rng.IntN(2) == 0},
		Key: row(), Before: row(), After: row()}
	for i := rng.IntN(4); i > 0; i-- {
		col := contracts.Column{Name: str(), Type: "text", BaseType: "text", Key: rng.IntN(2) == 0}
		if rng.IntN(3) == 0 {
			col.ExistingValue = contracts.RawValue(val())
		}
		c.Columns = append(c.Columns, col)
	}
	if rng.IntN(3) == 0 {
		c.Unchanged = []string{str(), str()}
	}
	return c
}

// TestDecodeFastEqualsUnmarshal: golden events, random changes as capture
// encodes them, and random corruptions of them decode to exactly what
// json.Unmarshal gives, or are left to it.
func TestDecodeFastEqualsUnmarshal(t *testing.T) {
	files, _ := filepath.Glob("../../contracts/testdata/golden/*.json")
	if len(files) == 0 {
		t.Fatal("no golden events")
	}
	dec := NewDecoder()
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sameAsUnmarshal(t, dec, data)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	fast := 0
	for i := 0; i < 3000; i++ {
		data, err := randomChange(rng).AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		if sameAsUnmarshal(t, dec, data) {
			fast++
		}
		for j := 0; j < 5; j++ {
			bad := append([]byte(nil), data...)
			switch rng.IntN(3) {
			case 0:
				bad[rng.IntN(len(bad))] = "{}[],:\"\\ 0n"[rng.IntN(11)]
			case 1:
				k := rng.IntN(len(bad))
				bad = append(bad[:k], bad[k+1:]...)
			case 2:
				bad = bad[:rng.IntN(len(bad))]
			}
			sameAsUnmarshal(t, dec, bad)
		}
	}
	if fast < 100 {
		t.Fatalf("only %d of 3000 capture-encoded changes took the fast path", fast)
	}
	for _, s := range []string{
		`{"v":1,"op":"c","source":{},"key":{"a":1},"key":{"b":2}}`,
		`{"V":1}`, `{"v":1.0}`, `{"v":1,"extra":2}`, `{"v":1,"key":null}`, `{"v":1,"columns":[]}`, `{"v":1,"unchanged":[]}`,
		`{"v":1,"source":{"txid":-1}}`, `{"v":1,"source":{"txid":4294967296}}`, `{"v":1,"source":{"commit_time":null}}`,
		`{"v":1,"after":{"a":{"x":[1,2,{"y":"}"}]},"b":"\u00e9\"","c":null}}`, ` {"v":1} `, `{"v":1}x`,
		`{"v":1,"columns":[{"name":"a","existing_value":null},{"name":"b","existing_value":{"k": [1, 2]}}]}`,
	} {
		sameAsUnmarshal(t, dec, []byte(s))
	}
}
