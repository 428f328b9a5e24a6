package pgrepl

import (
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgtype"
)

// textValue turns PostgreSQL's text output of a value whose built-in type
// is oid into its JSON form (see contracts.Change); appendTextValue says
// how.
func textValue(m *pgtype.Map, oid uint32, text []byte) (json.RawMessage, error) {
	return appendTextValue(make([]byte, 0, len(text)+2), m, oid, text)
}

// appendTextValue appends the JSON form of PostgreSQL's text output of a
// value whose built-in type is oid: a number for int2/int4/int8, a boolean
// for bool, otherwise a string holding the text unchanged. Integers and
// booleans are decoded through pgx's type map so that what reaches JSON is
// what PostgreSQL meant, not a re-spelling.
func appendTextValue(dst []byte, m *pgtype.Map, oid uint32, text []byte) ([]byte, error) {
	// Fast paths for what PostgreSQL prints (canonical decimal integers,
	// t/f): the same result as pgx's codecs below, without their
	// allocations. Anything else goes through pgx, which decides.
	switch oid {
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID:
		bits := 64
		if oid == pgtype.Int2OID {
			bits = 16
		} else if oid == pgtype.Int4OID {
			bits = 32
		}
		if v, err := strconv.ParseInt(string(text), 10, bits); err == nil {
			return strconv.AppendInt(dst, v, 10), nil
		}
	case pgtype.BoolOID:
		if len(text) == 1 && (text[0] == 't' || text[0] == 'f') {
			return strconv.AppendBool(dst, text[0] == 't'), nil
		}
	default:
		return appendJSONString(dst, text), nil
	}
	t, ok := m.TypeForOID(oid)
	if !ok {
		return nil, fmt.Errorf("type %d missing from pgx's type map", oid)
	}
	v, err := t.Codec.DecodeValue(m, oid, pgtype.TextFormatCode, text)
	if err != nil {
		return nil, fmt.Errorf("decode %q: %w", text, err)
	}
	switch v := v.(type) {
	case int16:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case int32:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case int64:
		return strconv.AppendInt(dst, v, 10), nil
	case bool:
		return strconv.AppendBool(dst, v), nil
	default:
		return nil, fmt.Errorf("decode %q: unexpected %T", text, v)
	}
}

// jsonPlain marks the ASCII bytes appendJSONString copies as they are.
var jsonPlain = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendJSONString appends s as a JSON string. Unlike encoding/json it does
// not escape <, > and &, so values stay readable; bytes that are not valid
// UTF-8 become U+FFFD (JSON text must be Unicode).
//
// Values are mostly plain text: runs that need no escaping are copied
// whole, and valid UTF-8 (checked once for the whole value) is copied
// without decoding its runes.
func appendJSONString(dst, s []byte) []byte {
	const hex = "0123456789abcdef"
	valid := utf8.Valid(s)
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if jsonPlain[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		if valid {
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
