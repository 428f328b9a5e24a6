package contracts

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// TestAppendJSONStringIsEncodingJSON: hostile and random values (random
// bytes, and random picks from escapes, multi-byte runes, line separators
// and broken UTF-8) encode to encoding/json's bytes (HTML escaping off),
// appended after existing content, from a []byte and from a string.
func TestAppendJSONStringIsEncodingJSON(t *testing.T) {
	cases := []string{"", "plain", `q " b \ `, "\b\f\n\r\t\x00\x1f\x7f", "<&>", "café", "bad \xff utf8 \xc3",
		"\u2028\u2029", "x\u2028", "\xe2\x80", "\xe2\x80\xa8\xff", "emoji 😀", "\xed\xa0\x80 surrogate", "trailing \xe2\x82",
		`{"a": [1, "x\"y"]}`}
	rng := rand.New(rand.NewPCG(5, 6))
	pieces := []string{"a", "Z", " ", `"`, `\`, "\n", "\b", "\f", "\x01", "\x7f", "é", "€", "😀", "\xff", "\xc3",
		"\xed\xa0\x80", "\u2028", "\u2029", "\xe2\x80", "<"}
	for i := 0; i < 5000; i++ {
		var b []byte
		if i%2 == 0 {
			b = make([]byte, rng.IntN(40))
			for j := range b {
				b[j] = byte(rng.IntN(256))
			}
		} else {
			for j := rng.IntN(20); j > 0; j-- {
				b = append(b, pieces[rng.IntN(len(pieces))]...)
			}
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		w := append([]byte("x,"), bytes.TrimSuffix(want.Bytes(), []byte("\n"))...)
		if got := AppendJSONString([]byte("x,"), []byte(s)); !bytes.Equal(got, w) {
			t.Fatalf("AppendJSONString(%q) = %q, want %q", s, got, w)
		}
		if got := appendString([]byte("x,"), s); !bytes.Equal(got, w) {
			t.Fatalf("appendString(%q) = %q, want %q", s, got, w)
		}
	}
}
