package contracts

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// AppendJSON appends the change's JSON form to dst: byte for byte what
// encoding/json writes for it with HTML escaping off (a json.Encoder with
// SetEscapeHTML(false), without the trailing newline), at a fraction of
// the cost. Capture encodes every change with it.
//
// Row values (json.RawMessage) are written as they are: they must be
// valid, compact JSON, as pgrepl's decoder produces. encoding/json would
// validate and compact them; AppendJSON trusts its caller. A column's
// ExistingValue is rare and is compacted like encoding/json does.
func (c *Change) AppendJSON(dst []byte) ([]byte, error) {
	dst = append(dst, `{"v":`...)
	dst = strconv.AppendInt(dst, int64(c.V), 10)
	dst = append(dst, `,"op":`...)
	dst = appendString(dst, string(c.Op))
	dst = append(dst, `,"source":`...)
	dst, err := appendSource(dst, &c.Source, true)
	if err != nil {
		return nil, err
	}
	if dst, err = appendColumns(dst, c.Columns); err != nil {
		return nil, err
	}
	return append(appendChangeRows(dst, c), '}'), nil
}

// appendChangeRows writes a change's key, before, after and unchanged.
func appendChangeRows(dst []byte, c *Change) []byte {
	dst = appendRow(dst, `,"key":`, c.Key)
	dst = appendRow(dst, `,"before":`, c.Before)
	dst = appendRow(dst, `,"after":`, c.After)
	if len(c.Unchanged) > 0 {
		dst = append(dst, `,"unchanged":[`...)
		for i, u := range c.Unchanged {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, u)
		}
		dst = append(dst, ']')
	}
	return dst
}

// appendRow writes a non-empty row with its keys sorted, as encoding/json
// writes maps.
func appendRow(dst []byte, field string, r Row) []byte {
	if len(r) == 0 {
		return dst
	}
	dst = append(dst, field...)
	var small [16]string
	keys := small[:0]
	for k := range r {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, k)
		dst = append(dst, ':')
		v := r[k]
		if v == nil {
			v = json.RawMessage("null") // encoding/json writes a nil RawMessage as null
		}
		dst = append(dst, v...)
	}
	return append(dst, '}')
}

func appendTime(dst []byte, t time.Time) ([]byte, error) {
	// time.Time.MarshalJSON refuses years it cannot write in RFC 3339.
	if y := t.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("encode commit_time: year %d outside [0,9999]", y)
	}
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"'), nil
}

func appendCompact(dst, raw []byte) ([]byte, error) {
	buf := bytes.NewBuffer(dst)
	if err := json.Compact(buf, raw); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// AppendMessageHead appends the start of a version 2 message whose first
// change is c: the envelope, the shared source and columns, and the
// opening of the changes array. AppendEntry then appends each change
// (with a comma before all but the first) and CloseMessage ends it.
// Capture writes messages so, change by change, without a Message value.
func AppendMessageHead(dst []byte, c *Change) ([]byte, error) {
	dst = append(dst, `{"v":2,"source":`...)
	dst, err := appendSource(dst, &c.Source, false)
	if err != nil {
		return nil, err
	}
	if dst, err = appendColumns(dst, c.Columns); err != nil {
		return nil, err
	}
	return append(dst, `,"changes":[`...), nil
}

// AppendEntry appends c's own part to a message begun by
// AppendMessageHead: op, seq, lsn and rows.
func AppendEntry(dst []byte, c *Change) []byte {
	dst = append(dst, `{"op":`...)
	dst = appendString(dst, string(c.Op))
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendInt(dst, c.Source.Seq, 10)
	dst = append(dst, `,"lsn":`...)
	dst = appendString(dst, c.Source.LSN)
	return append(appendChangeRows(dst, c), '}')
}

// CloseMessage ends a message begun by AppendMessageHead.
func CloseMessage(dst []byte) []byte { return append(dst, "]}"...) }

// AppendJSON appends the message's JSON form (version 2), as
// AppendMessageHead, AppendEntry and CloseMessage write it.
func (m *Message) AppendJSON(dst []byte) ([]byte, error) {
	if len(m.Changes) == 0 {
		return nil, fmt.Errorf("encode message of %s.%s: no changes", m.Source.Schema, m.Source.Table)
	}
	first := m.Change(0)
	dst, err := AppendMessageHead(dst, &first)
	if err != nil {
		return nil, err
	}
	for i := range m.Changes {
		if i > 0 {
			dst = append(dst, ',')
		}
		c := m.Change(i)
		dst = AppendEntry(dst, &c)
	}
	return CloseMessage(dst), nil
}

// appendColumns writes a non-empty column list.
func appendColumns(dst []byte, cols []Column) ([]byte, error) {
	var err error
	if len(cols) > 0 {
		dst = append(dst, `,"columns":[`...)
		for i := range cols {
			if i > 0 {
				dst = append(dst, ',')
			}
			col := &cols[i]
			dst = append(dst, `{"name":`...)
			dst = appendString(dst, col.Name)
			dst = append(dst, `,"type":`...)
			dst = appendString(dst, col.Type)
			dst = append(dst, `,"base_type":`...)
			dst = appendString(dst, col.BaseType)
			if col.Key {
				dst = append(dst, `,"key":true`...)
			}
			if col.Attnum != 0 {
				dst = append(dst, `,"attnum":`...)
				dst = strconv.AppendInt(dst, int64(col.Attnum), 10)
			}
			if col.ExistingValue != "" {
				dst = append(dst, `,"existing_value":`...)
				if dst, err = appendCompact(dst, []byte(col.ExistingValue)); err != nil {
					return nil, fmt.Errorf("encode column %s existing_value: %w", col.Name, err)
				}
			}
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	return dst, nil
}

// appendSource writes a source object: a change's (ofChange, with its lsn
// and seq) or a message's (without them), in the field order encoding/json
// writes for Source and MessageSource.
func appendSource(dst []byte, s *Source, ofChange bool) ([]byte, error) {
	dst = append(dst, `{"source_id":`...)
	dst = strconv.AppendInt(dst, s.SourceID, 10)
	dst = append(dst, `,"db":`...)
	dst = appendString(dst, s.Database)
	dst = append(dst, `,"schema":`...)
	dst = appendString(dst, s.Schema)
	dst = append(dst, `,"table":`...)
	dst = appendString(dst, s.Table)
	if ofChange {
		dst = append(dst, `,"lsn":`...)
		dst = appendString(dst, s.LSN)
	}
	dst = append(dst, `,"commit_lsn":`...)
	dst = appendString(dst, s.CommitLSN)
	if ofChange {
		dst = append(dst, `,"seq":`...)
		dst = strconv.AppendInt(dst, s.Seq, 10)
	}
	if s.TxID != 0 {
		dst = append(dst, `,"txid":`...)
		dst = strconv.AppendUint(dst, uint64(s.TxID), 10)
	}
	dst = append(dst, `,"commit_time":`...)
	var err error
	if dst, err = appendTime(dst, s.CommitTime); err != nil {
		return nil, err
	}
	if s.Snapshot {
		dst = append(dst, `,"snapshot":true`...)
	}
	return append(dst, '}'), nil
}
