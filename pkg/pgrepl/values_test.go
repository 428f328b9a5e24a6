package pgrepl

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"unicode/utf8"

	"github.com/jackc/pglogrepl"
)

// appendJSONStringByRune is appendJSONString as it was before it copied
// runs of plain bytes: one byte or rune at a time. The envelope's bytes
// must not change, so the faster form must write exactly what it wrote.
func appendJSONStringByRune(dst, s []byte) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}

// TestAppendJSONStringUnchanged: hostile and random values (random bytes,
// and random picks from escapes and multi-byte runes) encode to the same
// bytes as the rune-by-rune form, appended after existing content.
func TestAppendJSONStringUnchanged(t *testing.T) {
	t.Parallel()
	cases := []string{"", "plain", `q " b \ `, "\b\f\n\r\t\x00\x1f\x7f", "<&>", "café", "bad \xff utf8 \xc3",
		"\u2028\u2029", "emoji 😀", "\xed\xa0\x80 surrogate", "trailing \xe2\x82", `{"a": [1, "x\"y"]}`}
	rng := rand.New(rand.NewPCG(5, 6))
	pieces := []string{"a", "Z", " ", `"`, `\`, "\n", "\x01", "\x7f", "é", "€", "😀", "\xff", "\xc3", "\xed\xa0\x80", "\u2028"}
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
		prefix := []byte("x,")
		got := appendJSONString(bytes.Clone(prefix), []byte(s))
		want := appendJSONStringByRune(bytes.Clone(prefix), []byte(s))
		if !bytes.Equal(got, want) {
			t.Fatalf("appendJSONString(%q) = %q, want %q", s, got, want)
		}
	}
}

// TestRowValuesDoNotShareCapacity: a row's values share one buffer, so
// each must be capped at its end; appending to one value (as a consumer
// may) must leave the others as they were.
func TestRowValuesDoNotShareCapacity(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	d := NewDecoder(1, "db", testResolver)
	for _, m := range []pglogrepl.Message{relItems, begin(2, 1)} {
		if _, err := d.Decode(ctx, 1, m); err != nil {
			t.Fatal(err)
		}
	}
	out, err := d.Decode(ctx, 1, &pglogrepl.InsertMessage{RelationID: 100,
		Tuple: tuple(txt("1"), txt("a"), null, txt("t"), txt("5"))})
	if err != nil {
		t.Fatal(err)
	}
	after := out[0].After
	want := map[string]string{"id": "1", "name": `"a"`, "big": "null", "ok": "true", "n": "5"}
	for name := range want {
		_ = append(after[name], "XXXX"...)
	}
	for name, w := range want {
		if got := string(after[name]); got != w {
			t.Errorf("after appending to every value, %s = %s, want %s", name, got, w)
		}
	}
}
