package contracts

import (
	"unicode/utf8"
	"unsafe"
)

// jsonPlain marks the ASCII bytes a JSON string holds as they are.
var jsonPlain = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// AppendJSONString appends s as a JSON string exactly as encoding/json
// writes it with HTML escaping off: " and \ escaped, \b \f \n \r \t and
// the other control bytes escaped, bytes that are not valid UTF-8 replaced
// by \ufffd (JSON text is Unicode), U+2028 and U+2029 escaped (JavaScript
// line terminators); < > & and DEL stay as they are. It is the one JSON
// string writer of the wire format: envelopes (AppendJSON) and capture's
// row values use it.
//
// Values are mostly plain text: runs that need no escaping are copied
// whole, and valid UTF-8 (checked once for the whole value) is copied
// without decoding its runes.
func AppendJSONString(dst, s []byte) []byte {
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
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
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
			// U+2028 and U+2029 are E2 80 A8 and E2 80 A9.
			if c == 0xE2 && i+2 < len(s) && s[i+1] == 0x80 && s[i+2]&^1 == 0xA8 {
				dst = append(dst, s[start:i]...)
				dst = append(dst, '\\', 'u', '2', '0', '2', hex[s[i+2]&0xF])
				i += 3
				start = i
				continue
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendString is AppendJSONString of a string, read in place: the bytes
// are only read, never kept or written.
func appendString(dst []byte, s string) []byte {
	return AppendJSONString(dst, unsafe.Slice(unsafe.StringData(s), len(s)))
}
