package cdc

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"unicode/utf8"
	"unsafe"

	"github.com/rosettacdc/rosetta/contracts"
)

// decodeFast parses a change envelope as capture writes it (compact, the
// contract's field names, strings without escapes in names) in one pass.
// It returns ok=false for anything else — an escape in a field name or a
// structural value, an unknown or differently cased field, a null where a
// struct field is expected, a number that is not an integer — and the
// caller falls back to json.Unmarshal, so the result is always the one
// json.Unmarshal gives. Row values are slices of one copy of data, as
// json.RawMessage copies are.
//
// With a Decoder (d not nil) nothing is copied: row values, and strings
// that vary per message, are slices of data itself, column lists already
// seen are shared, and names are interned.
func decodeFast(data []byte, d *Decoder) (contracts.Change, bool) {
	p := parser{b: data, d: d}
	if d == nil {
		p.b = bytes.Clone(data)
	}
	var c contracts.Change
	// json.Unmarshal merges a repeated object field into the first; such
	// input is left to it.
	var seen fieldSet
	once := seen.once
	ok := p.object(func(key []byte) bool {
		switch string(key) {
		case "v":
			n, ok := p.int(0)
			c.V = int(n)
			return ok
		case "op":
			s, ok := p.plain()
			c.Op = op(s)
			return ok
		case "source":
			return once(1) && p.source(&c.Source)
		case "columns":
			if p.d == nil {
				return p.columns(&c.Columns)
			}
			return p.d.columnsOf(&p, &c.Columns)
		case "key":
			return once(2) && p.row(&c.Key)
		case "before":
			return once(4) && p.row(&c.Before)
		case "after":
			return once(8) && p.row(&c.After)
		case "unchanged":
			return p.strings(&c.Unchanged)
		}
		return false
	})
	if !ok || !p.end() {
		return contracts.Change{}, false
	}
	return c, true
}

// fieldSet records the fields of one object already read:
// json.Unmarshal merges a repeated object field into the first, and the
// fast decoders leave such input to it.
type fieldSet uint16

// once marks bit read and reports whether it was not before.
func (f *fieldSet) once(bit uint16) bool {
	if uint16(*f)&bit != 0 {
		return false
	}
	*f |= fieldSet(bit)
	return true
}

type parser struct {
	b []byte
	i int
	d *Decoder // nil: copy everything
}

// op returns the contract's Op constants without allocating.
func op(s []byte) contracts.Op {
	for _, o := range [...]contracts.Op{contracts.OpCreate, contracts.OpUpdate, contracts.OpDelete, contracts.OpTruncate, contracts.OpRead} {
		if string(s) == string(o) {
			return o
		}
	}
	return contracts.Op(s)
}

// name reads a string that repeats between messages (a column, type,
// schema, table or database name): interned by a Decoder.
func (p *parser) name() (string, bool) {
	s, ok := p.plain()
	if !ok || p.d == nil {
		return string(s), ok
	}
	return p.d.intern(s), true
}

// varying reads a string that differs between messages (an LSN): a slice
// of the message with a Decoder.
func (p *parser) varying() (string, bool) {
	s, ok := p.plain()
	if !ok || p.d == nil {
		return string(s), ok
	}
	return alias(s), true
}

// skipArray returns the bytes of the array at the parser, and moves past
// it, matching brackets outside strings without validating anything; ok is
// false, and the parser does not move, when it does not end.
func (p *parser) skipArray() ([]byte, bool) {
	p.ws()
	start, depth := p.i, 0
	for i := start; i < len(p.b); i++ {
		switch p.b[i] {
		case '"':
			for i++; i < len(p.b) && p.b[i] != '"'; i++ {
				if p.b[i] == '\\' {
					i++
				}
			}
		case '[', '{':
			depth++
		case ']', '}':
			depth--
			if depth == 0 {
				p.i = i + 1
				return p.b[start:p.i], true
			}
		}
	}
	return nil, false
}

func (p *parser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) end() bool {
	p.ws()
	return p.i == len(p.b)
}

func (p *parser) byte(c byte) bool {
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *parser) peek() byte {
	p.ws()
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

// object reads {"k": v, …}, calling field for each key with the parser
// at the value.
func (p *parser) object(field func(key []byte) bool) bool {
	if !p.byte('{') {
		return false
	}
	if p.byte('}') {
		return true
	}
	for {
		k, ok := p.plain()
		if !ok || !p.byte(':') || !field(k) {
			return false
		}
		if p.byte(',') {
			continue
		}
		return p.byte('}')
	}
}

// plain reads a string without escapes or control characters, valid
// UTF-8, returning its content (a slice of the buffer).
func (p *parser) plain() ([]byte, bool) {
	if !p.byte('"') {
		return nil, false
	}
	start := p.i
	ascii := true
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			if !ascii && !utf8.Valid(s) {
				return nil, false
			}
			return s, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
		p.i++
	}
	return nil, false
}

func (p *parser) str() (string, bool) {
	s, ok := p.plain()
	return string(s), ok
}

// literal reads the bytes of a number, true or false.
func (p *parser) literal() []byte {
	p.ws()
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			break
		}
		p.i++
	}
	return p.b[start:p.i]
}

func (p *parser) int(bits int) (int64, bool) {
	lit := p.literal()
	if !validNumber(lit) {
		return 0, false
	}
	n, err := strconv.ParseInt(string(lit), 10, 64)
	if err != nil || bits > 0 && (n < 0 || n >= 1<<bits) {
		return 0, false
	}
	return n, true
}

func (p *parser) bool() (bool, bool) {
	switch string(p.literal()) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

// value skips one JSON value and returns its bytes; nested objects and
// arrays are checked by json.Valid.
func (p *parser) value() ([]byte, bool) {
	p.ws()
	start := p.i
	switch p.peek() {
	case '"':
		p.i++
		for p.i < len(p.b) {
			c := p.b[p.i]
			if c == '"' {
				p.i++
				v := p.b[start:p.i]
				if _, ok := plainContent(v); ok {
					return v, true
				}
				// Escapes: valid JSON is all a RawMessage needs.
				return v, json.Valid(v)
			}
			if c == '\\' {
				p.i++
			}
			p.i++
		}
		return nil, false
	case '{', '[':
		depth := 0
		for p.i < len(p.b) {
			switch c := p.b[p.i]; c {
			case '"':
				p.i++
				for p.i < len(p.b) && p.b[p.i] != '"' {
					if p.b[p.i] == '\\' {
						p.i++
					}
					p.i++
				}
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					p.i++
					v := p.b[start:p.i]
					return v, json.Valid(v)
				}
			}
			p.i++
		}
		return nil, false
	default:
		v := p.literal()
		switch string(v) {
		case "null", "true", "false":
			return v, true
		}
		return v, validNumber(v)
	}
}

func (p *parser) source(s *contracts.Source) bool {
	return p.object(func(key []byte) bool {
		var ok bool
		switch string(key) {
		case "source_id":
			s.SourceID, ok = p.int(0)
		case "db":
			s.Database, ok = p.name()
		case "schema":
			s.Schema, ok = p.name()
		case "table":
			s.Table, ok = p.name()
		case "lsn":
			s.LSN, ok = p.varying()
		case "commit_lsn":
			s.CommitLSN, ok = p.varying()
		case "seq":
			s.Seq, ok = p.int(0)
		case "txid":
			var n int64
			n, ok = p.int(32)
			s.TxID = uint32(n)
		case "commit_time":
			var v []byte
			if v, ok = p.value(); ok && len(v) > 0 && v[0] == '"' {
				ok = s.CommitTime.UnmarshalJSON(v) == nil
			} else {
				ok = false
			}
		case "snapshot":
			s.Snapshot, ok = p.bool()
		}
		return ok
	})
}

func (p *parser) columns(cols *[]contracts.Column) bool {
	if !p.byte('[') {
		return false
	}
	out := make([]contracts.Column, 0, 16)
	if !p.byte(']') {
		for {
			var col contracts.Column
			ok := p.object(func(key []byte) bool {
				var ok bool
				switch string(key) {
				case "name":
					col.Name, ok = p.name()
				case "type":
					col.Type, ok = p.name()
				case "base_type":
					col.BaseType, ok = p.name()
				case "key":
					col.Key, ok = p.bool()
				case "attnum":
					var n int64
					n, ok = p.int(16)
					col.Attnum = int(n)
				case "existing_value":
					var v []byte
					if v, ok = p.value(); ok && string(v) != "null" {
						col.ExistingValue = contracts.RawValue(v)
					}
				}
				return ok
			})
			if !ok {
				return false
			}
			out = append(out, col)
			if p.byte(',') {
				continue
			}
			if !p.byte(']') {
				return false
			}
			break
		}
	}
	*cols = out
	return true
}

func (p *parser) row(r *contracts.Row) bool {
	row := make(contracts.Row, 8)
	ok := p.object(func(key []byte) bool {
		v, ok := p.value()
		if ok {
			if p.d != nil {
				row[p.d.intern(key)] = json.RawMessage(v)
			} else {
				row[string(key)] = json.RawMessage(v)
			}
		}
		return ok
	})
	if ok {
		*r = row
	}
	return ok
}

func (p *parser) strings(out *[]string) bool {
	if !p.byte('[') {
		return false
	}
	var ss []string
	if !p.byte(']') {
		for {
			s, ok := p.str()
			if !ok {
				return false
			}
			ss = append(ss, s)
			if p.byte(',') {
				continue
			}
			if !p.byte(']') {
				return false
			}
			break
		}
	} else {
		ss = []string{}
	}
	*out = ss
	return true
}

// Decoder decodes the change messages of one consumer like Decode, with
// far fewer allocations: what repeats between messages of a table (its
// column list, column and table names) is decoded once and shared, and the
// change refers to the message instead of copying it — its row values (and
// LSN strings) are slices of data. So data must not be modified while the
// change, or a batch collapsed from it, is in use; JetStream message data,
// which nothing writes to, qualifies.
//
// Changes decoded by one Decoder share their Columns slices: treat them as
// read-only (everything in Rosetta does). A Decoder is not safe for
// concurrent use.
type Decoder struct {
	names   map[string]string
	columns map[string][]contracts.Column // a columns array's JSON -> decoded
}

// Bounds of a Decoder's caches; when one is full it starts over (a consumer
// sees a few tables, each with a few column lists over time).
const (
	maxNames       = 4096
	maxColumnLists = 256
)

// NewDecoder returns an empty Decoder.
func NewDecoder() *Decoder {
	return &Decoder{names: map[string]string{}, columns: map[string][]contracts.Column{}}
}

// Decode parses and checks one message body, as the package's Decode does
// (the same change, the same errors), under the Decoder's terms.
func (d *Decoder) Decode(data []byte) (contracts.Change, error) {
	return decodeOne(data, d)
}

func (d *Decoder) intern(b []byte) string {
	if s, ok := d.names[string(b)]; ok {
		return s
	}
	if len(d.names) >= maxNames {
		clear(d.names)
	}
	s := string(b)
	d.names[s] = s
	return s
}

// columnsOf reads a columns array: the cached list when the array's bytes
// are ones already decoded, else it parses them (and caches the result).
// The array's extent is found by matching brackets; a list is only cached
// from a successful parse of exactly those bytes, so a hit gives what
// parsing them gives.
func (d *Decoder) columnsOf(p *parser, cols *[]contracts.Column) bool {
	start := p.i
	if raw, ok := p.skipArray(); ok {
		if c, ok := d.columns[string(raw)]; ok {
			*cols = c
			return true
		}
	}
	p.i = start
	p.ws()
	from := p.i
	if !p.columns(cols) {
		return false
	}
	if len(d.columns) >= maxColumnLists {
		clear(d.columns)
	}
	// Clipped: an append to one change's list must not write into the
	// array the others share.
	*cols = slices.Clip(*cols)
	d.columns[string(p.b[from:p.i])] = *cols
	return true
}

// alias returns b's bytes as a string without copying them: only for
// bytes nothing will modify while the string is in use.
func alias(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}
