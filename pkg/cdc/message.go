package cdc

import (
	"bytes"
	"encoding/json"
	"errors"

	"github.com/rosettacdc/rosetta/contracts"
)

// ErrNotOneChange is Decode's error for a message of several changes.
var ErrNotOneChange = errors.New("message holds several changes; read it with DecodeMessage")

// DecodeMessage reads one message body of either envelope version and
// appends its changes to dst, and to errs each change's Check error (nil
// for a valid change), so that a consumer can set aside the one bad change
// of a message and apply the rest. err is set, and nothing appended, when
// the body as a whole cannot be read.
func DecodeMessage(data []byte, dst []contracts.Change, errs []error) ([]contracts.Change, []error, error) {
	return decodeMessage(data, nil, dst, errs)
}

// DecodeMessage is the package's DecodeMessage under the Decoder's terms
// (the changes refer to data and share their column list).
func (d *Decoder) DecodeMessage(data []byte, dst []contracts.Change, errs []error) ([]contracts.Change, []error, error) {
	return decodeMessage(data, d, dst, errs)
}

func decodeMessage(data []byte, d *Decoder, dst []contracts.Change, errs []error) ([]contracts.Change, []error, error) {
	if version(data) != contracts.MessageVersion {
		c, err := parse(data, d)
		if err != nil {
			return dst, errs, err
		}
		if err := checkChange(&c); err != nil {
			// As Decode: an invalid change is set aside as a zero change.
			return append(dst, contracts.Change{}), append(errs, err), nil
		}
		return append(dst, c), append(errs, nil), nil
	}
	n := len(dst)
	out, ok := decodeMessageFast(data, d, dst)
	if !ok {
		m, err := contracts.DecodeMessage(data)
		if err != nil {
			return dst[:n], errs, err
		}
		out = dst[:n]
		for _, c := range m.All() {
			out = append(out, c)
		}
	}
	for i := n; i < len(out); i++ {
		errs = append(errs, checkChange(&out[i]))
	}
	return out, errs, nil
}

// version is the envelope's "v": peeked at where capture writes it, first,
// else read by encoding/json (0 when the body has none or is not JSON; the
// full decoders then judge it).
func version(data []byte) int {
	if len(data) > 6 && bytes.HasPrefix(data, []byte(`{"v":`)) && data[6] == ',' {
		return int(data[5] - '0')
	}
	var head struct {
		V int `json:"v"`
	}
	if json.Unmarshal(data, &head) != nil {
		return 0
	}
	return head.V
}

// decodeMessageFast reads a version 2 message as capture writes it (v,
// source, columns, then changes), appending to dst; ok is false for
// anything else, and the caller falls back to encoding/json.
func decodeMessageFast(data []byte, d *Decoder, dst []contracts.Change) ([]contracts.Change, bool) {
	p := parser{b: data, d: d}
	if d == nil {
		p.b = bytes.Clone(data)
	}
	n := len(dst)
	var (
		src     contracts.Source
		cols    []contracts.Column
		v       int64
		seen    fieldSet
		entries bool
	)
	ok := p.object(func(key []byte) bool {
		if entries {
			return false // fields after changes: leave it to encoding/json
		}
		switch string(key) {
		case "v":
			var ok bool
			v, ok = p.int(0)
			return ok && v == contracts.MessageVersion && seen.once(1)
		case "source":
			return seen.once(2) && p.source(&src) && src.LSN == "" && src.Seq == 0
		case "columns":
			if !seen.once(4) {
				return false
			}
			if p.d == nil {
				return p.columns(&cols)
			}
			return p.d.columnsOf(&p, &cols)
		case "changes":
			if seen&3 != 3 {
				return false
			}
			entries = true
			var ok bool
			dst, ok = p.entries(dst, &src, cols)
			return ok
		}
		return false
	})
	if !ok || !entries || !p.end() || len(dst) == n {
		return dst[:n], false
	}
	return dst, true
}

// entries reads the changes array, appending a whole change per entry.
func (p *parser) entries(dst []contracts.Change, src *contracts.Source, cols []contracts.Column) ([]contracts.Change, bool) {
	if !p.byte('[') {
		return dst, false
	}
	if p.byte(']') {
		return dst, true
	}
	for {
		c := contracts.Change{V: contracts.MessageVersion, Source: *src, Columns: cols}
		var seen fieldSet
		once := seen.once
		ok := p.object(func(key []byte) bool {
			switch string(key) {
			case "op":
				s, ok := p.plain()
				c.Op = op(s)
				return once(1) && ok
			case "seq":
				var ok bool
				c.Source.Seq, ok = p.int(0)
				return once(2) && ok
			case "lsn":
				var ok bool
				c.Source.LSN, ok = p.varying()
				return once(4) && ok
			case "key":
				return once(8) && p.row(&c.Key)
			case "before":
				return once(16) && p.row(&c.Before)
			case "after":
				return once(32) && p.row(&c.After)
			case "unchanged":
				return once(64) && p.strings(&c.Unchanged)
			}
			return false
		})
		if !ok {
			return dst, false
		}
		dst = append(dst, c)
		if p.byte(',') {
			continue
		}
		return dst, p.byte(']')
	}
}
