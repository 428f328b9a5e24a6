package cdc

import (
	"encoding/json"
	"math/rand/v2"
	"testing"

	"github.com/rosettacdc/rosetta/pkg/benchcpu"
)

// slowValue is ValueFromJSON as it was before its fast paths: every
// string and number through json.Unmarshal.
func slowValue(raw []byte) (Value, bool) {
	switch {
	case len(raw) > 0 && raw[0] == '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return Value{}, false
		}
		return Value{Text: s}, true
	default:
		var n json.Number
		if json.Unmarshal(raw, &n) != nil {
			return Value{}, false
		}
		return Value{Text: n.String()}, true
	}
}

// TestValueFromJSONFastPathsEqualUnmarshal: strings and numbers, valid
// or not, give what json.Unmarshal gives (value, or an error).
func TestValueFromJSONFastPathsEqualUnmarshal(t *testing.T) {
	cases := []string{`""`, `"plain"`, `"caf\u00e9"`, "\"café\"", "\"bad \xff\"", "\"tab\there\"", `"quote \" in"`,
		`"back\\slash"`, `"{\"sku\": \"A\", \"n\": [1, 2]}"`, `"a\/b\b\f\n\r\t"`, `"\u00e9 and \""`, `"end\"`, `"bad \x"`,
		"\"\xc3\\n\xa9\"", "\"caf\xc3\xa9 \\\"q\\\"\"", `"unterminated`, `"a"b"`, `"😀"`, "\"\xed\xa0\x80\"",
		`0`, `-0`, `12`, `-12`, `1.5`, `1e10`, `1E+2`, `-1.25e-3`, `01`, `1.`, `.5`, `-`, `1e`, `1.5.5`, `+1`, `1x`, `12345678901234567890123`}
	rng := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 5000; i++ {
		b := make([]byte, rng.IntN(8))
		for j := range b {
			b[j] = "0123456789.-+eE\"\\a\xc3\xa9\x01"[rng.IntN(20)]
		}
		cases = append(cases, string(b), `"`+string(b)+`"`)
	}
	for _, c := range cases {
		if len(c) == 0 || !(c[0] == '"' || c[0] == '-' || c[0] >= '0' && c[0] <= '9') {
			continue
		}
		want, ok := slowValue([]byte(c))
		got, err := ValueFromJSON(json.RawMessage(c))
		if ok != (err == nil) || got != want {
			t.Fatalf("ValueFromJSON(%q) = %+v, %v; json.Unmarshal gives %+v, ok=%v", c, got, err, want, ok)
		}
	}
}

// TestCheckAndSharedValueEqualValueFromJSON: checkValue fails exactly when
// ValueFromJSON does, with its error, and sharedValue gives its value, for
// every kind of value, valid or not.
func TestCheckAndSharedValueEqualValueFromJSON(t *testing.T) {
	cases := []string{``, ` `, `null`, `nul`, `true`, `false`, `fals`, `{"a":1}`, `{"a":`, `[1,2]`, ` "x" `, ` 12 `,
		`""`, `"plain"`, `"caf\u00e9"`, "\"café\"", "\"bad \xff\"", "\"tab\there\"", `"quote \" in"`, `"a\/b\b\f\n\r\t"`,
		"\"\xc3\\n\xa9\"", `"end\"`, `"bad \x"`, `0`, `-0`, `1.5`, `1e10`, `01`, `1.`, `+1`, `x`}
	rng := rand.New(rand.NewPCG(9, 10))
	for i := 0; i < 5000; i++ {
		b := make([]byte, rng.IntN(8))
		for j := range b {
			b[j] = "0123456789.-+eE\"\\a\xc3\xa9\x01nt/ "[rng.IntN(24)]
		}
		cases = append(cases, string(b), `"`+string(b)+`"`)
	}
	for _, c := range cases {
		want, werr := ValueFromJSON(json.RawMessage(c))
		if err := checkValue(json.RawMessage(c)); (err == nil) != (werr == nil) || err != nil && err.Error() != werr.Error() {
			t.Fatalf("checkValue(%q) = %v; ValueFromJSON gives %v", c, err, werr)
		}
		if werr != nil {
			continue
		}
		if got := sharedValue(json.RawMessage(c)); got != want {
			t.Fatalf("sharedValue(%q) = %+v; ValueFromJSON gives %+v", c, got, want)
		}
	}
}

// BenchmarkValueFromJSON converts the values of a typical row.
func BenchmarkValueFromJSON(b *testing.B) {
	vals := []json.RawMessage{json.RawMessage(`123456`), json.RawMessage(`"34.56"`),
		json.RawMessage(`"order 123456 v1 shipped to warehouse north-east"`), json.RawMessage(`"2026-01-01 00:02:03.456+00"`),
		json.RawMessage(`"{\"sku\": \"SKU-456\", \"qty\": 1}"`)}
	b.ReportAllocs()
	for b.Loop() {
		for _, v := range vals {
			if _, err := ValueFromJSON(v); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkDecode parses and checks one message body of a typical
// eight-column insert, as the sink does for every message it fetches.
func BenchmarkDecode(b *testing.B) {
	body := []byte(`{"v":1,"op":"c","source":{"source_id":1,"db":"src","schema":"public","table":"orders","lsn":"0/1D78E70","commit_lsn":"0/1D79000","seq":17,"txid":750,"commit_time":"2026-11-23T13:42:43.123456Z"},"columns":[{"name":"id","type":"bigint","base_type":"bigint","key":true},{"name":"ver","type":"integer","base_type":"integer"},{"name":"qty","type":"integer","base_type":"integer"},{"name":"amount","type":"bigint","base_type":"bigint"},{"name":"price","type":"double precision","base_type":"double precision"},{"name":"note","type":"text","base_type":"text"},{"name":"ts","type":"timestamp with time zone","base_type":"timestamp with time zone"},{"name":"attrs","type":"jsonb","base_type":"jsonb"}],"key":{"id":123456},"after":{"amount":123456001,"attrs":"{\"sku\": \"SKU-456\", \"qty\": 1}","id":123456,"note":"order 123456 v1 shipped to warehouse north-east","price":"34.56","qty":42,"ts":"2026-01-01 00:02:03.456+00","ver":1}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecoder is BenchmarkDecode with a Decoder that has seen the
// table before, as the sink runner's has.
func BenchmarkDecoder(b *testing.B) {
	body := []byte(`{"v":1,"op":"c","source":{"source_id":1,"db":"src","schema":"public","table":"orders","lsn":"0/1D78E70","commit_lsn":"0/1D79000","seq":17,"txid":750,"commit_time":"2026-11-23T13:42:43.123456Z"},"columns":[{"name":"id","type":"bigint","base_type":"bigint","key":true},{"name":"ver","type":"integer","base_type":"integer"},{"name":"qty","type":"integer","base_type":"integer"},{"name":"amount","type":"bigint","base_type":"bigint"},{"name":"price","type":"double precision","base_type":"double precision"},{"name":"note","type":"text","base_type":"text"},{"name":"ts","type":"timestamp with time zone","base_type":"timestamp with time zone"},{"name":"attrs","type":"jsonb","base_type":"jsonb"}],"key":{"id":123456},"after":{"amount":123456001,"attrs":"{\"sku\": \"SKU-456\", \"qty\": 1}","id":123456,"note":"order 123456 v1 shipped to warehouse north-east","price":"34.56","qty":42,"ts":"2026-01-01 00:02:03.456+00","ver":1}}`)
	dec := NewDecoder()
	b.ReportAllocs()
	defer benchcpu.PerOp(b)()
	for b.Loop() {
		if _, err := dec.Decode(body); err != nil {
			b.Fatal(err)
		}
	}
}
