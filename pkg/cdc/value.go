package cdc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// Value is one column value in PostgreSQL's text form, ready to be sent
// through COPY or bound as text.
type Value struct {
	Text string
	Null bool
}

// ValueFromJSON converts an envelope value to its PostgreSQL text form: a
// JSON string becomes its content, a number its literal, a boolean
// "true"/"false", null (or an absent value) SQL NULL. Objects and arrays,
// which the contract does not produce, are kept as their JSON text.
func ValueFromJSON(raw json.RawMessage) (Value, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return Value{Null: true}, nil
	}
	switch raw[0] {
	case 'n':
		if string(raw) == "null" {
			return Value{Null: true}, nil
		}
	case '"':
		// Most strings need no unescaping: their content is the text.
		// The result is what json.Unmarshal gives, without its cost.
		if s, ok := plainString(raw); ok {
			return Value{Text: s}, nil
		}
		if s, ok := unescapeSimple(raw); ok {
			return Value{Text: s}, nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return Value{}, fmt.Errorf("decode json string value: %w", err)
		}
		return Value{Text: s}, nil
	case 't':
		if string(raw) == "true" {
			return Value{Text: "true"}, nil
		}
	case 'f':
		if string(raw) == "false" {
			return Value{Text: "false"}, nil
		}
	case '{', '[':
		if !json.Valid(raw) {
			return Value{}, fmt.Errorf("decode json value %.40q: invalid json", raw)
		}
		return Value{Text: string(raw)}, nil
	default:
		if raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9' {
			if validNumber(raw) {
				return Value{Text: string(raw)}, nil
			}
			var n json.Number
			if err := json.Unmarshal(raw, &n); err != nil {
				return Value{}, fmt.Errorf("decode json number value: %w", err)
			}
			return Value{Text: n.String()}, nil
		}
	}
	return Value{}, fmt.Errorf("decode json value %.40q: not a json value", raw)
}

// plainString returns the content of a JSON string literal that has no
// escapes, no control characters and only valid UTF-8: exactly what
// json.Unmarshal would return for it. ok is false for anything else.
func plainString(raw []byte) (string, bool) {
	in, ok := plainContent(raw)
	if !ok {
		return "", false
	}
	return string(in), true
}

// plainContent is plainString's content as a slice of raw.
func plainContent(raw []byte) ([]byte, bool) {
	if len(raw) < 2 || raw[len(raw)-1] != '"' {
		return nil, false
	}
	in := raw[1 : len(raw)-1]
	ascii := true
	for _, c := range in {
		if c < 0x20 || c == '"' || c == '\\' {
			return nil, false
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
	}
	if !ascii && !utf8.Valid(in) {
		return nil, false // json.Unmarshal replaces invalid bytes with U+FFFD
	}
	return in, true
}

// simpleEscaped reports whether unescapeSimple decodes raw, without
// decoding it. The escapes it takes are ASCII, so the input is valid UTF-8
// exactly when the output is.
func simpleEscaped(raw []byte) bool {
	if len(raw) < 2 || raw[len(raw)-1] != '"' {
		return false
	}
	in := raw[1 : len(raw)-1]
	ascii := true
	for i := 0; i < len(in); i++ {
		switch c := in[i]; {
		case c == '\\':
			i++
			if i == len(in) {
				return false
			}
			switch in[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			default:
				return false
			}
		case c < 0x20 || c == '"':
			return false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return ascii || utf8.Valid(in)
}

// checkValue returns the error ValueFromJSON returns for raw, without
// building the value when there is none.
func checkValue(raw json.RawMessage) error {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		return nil
	}
	switch c := t[0]; {
	case c == '"':
		if _, ok := plainContent(t); ok || simpleEscaped(t) {
			return nil
		}
	case c == '-' || c >= '0' && c <= '9':
		if validNumber(t) {
			return nil
		}
	case string(t) == "null" || string(t) == "true" || string(t) == "false":
		return nil
	}
	_, err := ValueFromJSON(raw)
	return err
}

// sharedValue is ValueFromJSON of a value Check accepted, except that a
// string without escapes, or a number, is not copied: its Text is raw's
// bytes (see Collapse).
func sharedValue(raw json.RawMessage) Value {
	t := bytes.TrimSpace(raw)
	if len(t) > 0 {
		switch c := t[0]; {
		case c == '"':
			if in, ok := plainContent(t); ok {
				return Value{Text: alias(in)}
			}
		case c == '-' || c >= '0' && c <= '9':
			if validNumber(t) {
				return Value{Text: alias(t)}
			}
		}
	}
	v, _ := ValueFromJSON(raw)
	return v
}

// unescapeSimple decodes a JSON string literal whose escapes are all of
// the one-character kind (\" \\ \/ \b \f \n \r \t) and whose other bytes are
// valid UTF-8 without control characters: exactly what json.Unmarshal
// returns for it (jsonb and json values are full of \"). ok is false for
// \u escapes and anything else.
func unescapeSimple(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[len(raw)-1] != '"' {
		return "", false
	}
	in := raw[1 : len(raw)-1]
	out := make([]byte, 0, len(in))
	ascii := true
	for i := 0; i < len(in); i++ {
		c := in[i]
		switch {
		case c == '\\':
			i++
			if i == len(in) {
				return "", false
			}
			switch in[i] {
			case '"', '\\', '/':
				out = append(out, in[i])
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			default:
				return "", false
			}
		case c < 0x20 || c == '"':
			return "", false
		default:
			if c >= utf8.RuneSelf {
				ascii = false
			}
			out = append(out, c)
		}
	}
	if !ascii && !utf8.Valid(out) {
		return "", false
	}
	return alias(out), true // out is ours alone: never written again
}

// validNumber reports whether raw is a JSON number literal (RFC 8259:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?).
func validNumber(raw []byte) bool {
	i := 0
	if i < len(raw) && raw[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(raw) && raw[i] >= '0' && raw[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(raw) && raw[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(raw) && raw[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(raw) && (raw[i] == 'e' || raw[i] == 'E') {
		i++
		if i < len(raw) && (raw[i] == '+' || raw[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(raw)
}
