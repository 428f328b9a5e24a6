package snowflake

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// arrayToJSON converts PostgreSQL's array output ({1,2,NULL}, {{"a b",c}},
// {}) of elements of type elem into a JSON array for a VARIANT column.
//
// Elements keep their exact value: integers become JSON numbers, booleans
// JSON booleans, finite floats JSON numbers (PostgreSQL prints the shortest
// text that round-trips), json and jsonb elements nested JSON, NULL null,
// and everything else (numeric included, whose digits a JSON number in a
// VARIANT could round) a JSON string of the element's text. Arrays with
// explicit bounds ([0:2]={...}) are rejected: a JSON array cannot say where
// it starts.
func arrayToJSON(v, elem string) (string, error) {
	if !utf8.ValidString(v) {
		return "", badEncoding("the array text is not valid UTF-8")
	}
	if strings.HasPrefix(v, "[") {
		return "", fmt.Errorf("the array has explicit bounds (it does not start at index 1), which a JSON array cannot keep")
	}
	delim := byte(',')
	if elem == "box" {
		delim = ';' // the only built-in type whose arrays use another delimiter
	}
	p := arrayParser{s: v, delim: delim, elem: elem}
	var out strings.Builder
	out.Grow(len(v) + 16)
	if err := p.array(&out); err != nil {
		return "", err
	}
	if p.i != len(p.s) {
		return "", fmt.Errorf("the array text has trailing characters after position %d", p.i)
	}
	return out.String(), nil
}

type arrayParser struct {
	s     string
	i     int
	delim byte
	elem  string
}

func (p *arrayParser) errorf(format string, args ...any) error {
	return fmt.Errorf("malformed array text at position %d: %s", p.i, fmt.Sprintf(format, args...))
}

// array parses {elem, elem, ...} at p.i.
func (p *arrayParser) array(out *strings.Builder) error {
	if p.i >= len(p.s) || p.s[p.i] != '{' {
		return p.errorf("expected {")
	}
	p.i++
	out.WriteByte('[')
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		out.WriteByte(']')
		return nil
	}
	for n := 0; ; n++ {
		if n > 0 {
			out.WriteByte(',')
		}
		if p.i >= len(p.s) {
			return p.errorf("unterminated array")
		}
		switch p.s[p.i] {
		case '{':
			if err := p.array(out); err != nil {
				return err
			}
		case '"':
			text, err := p.quoted()
			if err != nil {
				return err
			}
			if err := p.element(out, text, false); err != nil {
				return err
			}
		default:
			start := p.i
			for p.i < len(p.s) && p.s[p.i] != p.delim && p.s[p.i] != '}' {
				p.i++
			}
			text := p.s[start:p.i]
			if text == "" {
				return p.errorf("empty unquoted element")
			}
			if err := p.element(out, text, strings.EqualFold(text, "NULL")); err != nil {
				return err
			}
		}
		if p.i >= len(p.s) {
			return p.errorf("unterminated array")
		}
		switch p.s[p.i] {
		case p.delim:
			p.i++
		case '}':
			p.i++
			out.WriteByte(']')
			return nil
		default:
			return p.errorf("expected %q or }", p.delim)
		}
	}
}

// quoted parses "..." with backslash escapes.
func (p *arrayParser) quoted() (string, error) {
	p.i++ // opening quote
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch c {
		case '\\':
			if p.i+1 >= len(p.s) {
				return "", p.errorf("dangling backslash")
			}
			b.WriteByte(p.s[p.i+1])
			p.i += 2
		case '"':
			p.i++
			return b.String(), nil
		default:
			b.WriteByte(c)
			p.i++
		}
	}
	return "", p.errorf("unterminated quoted element")
}

// element writes one element as JSON.
func (p *arrayParser) element(out *strings.Builder, text string, null bool) error {
	if null {
		out.WriteString("null")
		return nil
	}
	switch p.elem {
	case "smallint", "integer", "bigint", "oid":
		if d := strings.TrimPrefix(text, "-"); d == "" || !allDigits(d) {
			return fmt.Errorf("an array element of type %s is not an integer", p.elem)
		}
		out.WriteString(text)
		return nil
	case "boolean":
		switch text {
		case "t", "true":
			out.WriteString("true")
		case "f", "false":
			out.WriteString("false")
		default:
			return fmt.Errorf("an array element of type boolean is not t or f")
		}
		return nil
	case "real", "double precision":
		if f, err := strconv.ParseFloat(text, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) && json.Valid([]byte(text)) {
			out.WriteString(text)
			return nil
		}
		// NaN, Infinity: no JSON number; kept as strings below.
	case "json", "jsonb":
		if err := checkJSON(text, p.elem == "json"); err != nil {
			return fmt.Errorf("an array element: %w", err)
		}
		out.WriteString(text)
		return nil
	}
	b, err := json.Marshal(text)
	if err != nil {
		return fmt.Errorf("encode array element: %w", err)
	}
	out.Write(b)
	return nil
}
