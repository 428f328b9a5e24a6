package snowflake

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
)

// stageColumn is one data column of a batch: its PostgreSQL name (the key of
// cdc.RowChange.Values) and base type, and its Snowflake name and type.
type stageColumn struct {
	source string // "" for a kept column the source dropped: staged NULL
	name   string
	base   string
	typ    colType
	key    bool
	attnum int // the source column's number (contracts.Column.Attnum), 0 unknown
}

// shape is the data columns of one table's batch, in staging order, and
// the positions of its key columns (in cdc.TableBatch.KeyColumns order).
type shape struct {
	cols []stageColumn
	keys []int
	// nullableKeys: the keys may hold NULL (keysNullable), so they are
	// matched NULL-safe (keyEq).
	nullableKeys bool
}

func (s shape) keyCols() []stageColumn {
	out := make([]stageColumn, len(s.keys))
	for i, k := range s.keys {
		out[i] = s.cols[k]
	}
	return out
}

// signature identifies the staging table a shape needs.
func (s shape) signature() string {
	var b strings.Builder
	for _, c := range s.cols {
		b.WriteString(c.name + "\x01" + c.typ.stageSQL() + "\x01" + strconv.FormatBool(c.key) + "\x00")
	}
	return b.String()
}

// RowError is a value the destination cannot hold exactly: the same batch
// will always fail with it, so Apply reports it as sinkrunner.Permanent.
// It names the row by version, not by its values, which may be sensitive.
type RowError struct {
	Table   string // schema.table at the source
	Column  string // source column name
	Version contracts.Version
	Err     error
}

func (e *RowError) Error() string {
	return fmt.Sprintf("column %s of %s, in the row changed at %s seq %d: %v",
		e.Column, e.Table, contracts.FormatLSN(e.Version.LSN), e.Version.Seq, e.Err)
}

func (e *RowError) Unwrap() error { return e.Err }

// Class is the dead-letter class of the reason (a sinkrunner.Class…
// constant).
func (e *RowError) Class() string {
	var ce *classError
	if errors.As(e.Err, &ce) {
		return ce.class
	}
	return sinkrunner.ClassInvalidValue
}

// writeStageCSV writes rows as the CSV file COPY loads into the staging
// table: one record per row with the shape's columns, then _ROSETTA_DEL,
// _ROSETTA_LSN, _ROSETTA_SEQ, _ROSETTA_UNCHANGED, _ROSETTA_FB and the
// fallback key columns.
//
// Every non-NULL value is enclosed in double quotes (inner quotes doubled)
// and NULL is an empty unenclosed field, so with FIELD_OPTIONALLY_ENCLOSED_BY
// = '"', EMPTY_FIELD_AS_NULL = TRUE and no escape characters, NULL and the
// empty string stay distinct and every other byte, newlines and
// backslashes included, is loaded as is.
func writeStageCSV(w io.Writer, table cdc.TableRef, s shape, rows []cdc.RowChange) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	flags := make([]byte, len(s.cols))
	var scratch []byte
	for ri := range rows {
		r := &rows[ri]
		fail := func(col string, err error) error {
			return &RowError{Table: table.String(), Column: col, Version: r.Version, Err: err}
		}
		for i, c := range s.cols {
			if i > 0 {
				bw.WriteByte(',')
			}
			var v cdc.Value
			switch {
			case c.key:
				v = r.Key[keyIndex(s, i)]
			case r.Delete:
				v = cdc.Value{Null: true}
			default:
				var ok bool
				if v, ok = r.Values[c.source]; !ok {
					v = cdc.Value{Null: true} // absent or unchanged: NULL in the stage
				}
			}
			if v.Null {
				continue
			}
			text, err := encode(c.typ, c.base, v.Text)
			if err != nil {
				return fail(c.source, err)
			}
			writeQuoted(bw, text)
		}
		scratch = append(scratch[:0], `,"`...)
		scratch = strconv.AppendBool(scratch, r.Delete)
		scratch = append(scratch, `","`...)
		scratch = strconv.AppendUint(scratch, r.Version.LSN, 10)
		scratch = append(scratch, `","`...)
		scratch = strconv.AppendInt(scratch, r.Version.Seq, 10)
		scratch = append(scratch, `",`...)
		bw.Write(scratch)
		if !r.Delete && len(r.Unchanged) > 0 {
			for i := range flags {
				flags[i] = '0'
			}
			for _, u := range r.Unchanged {
				for i, c := range s.cols {
					if c.source == u && !c.key {
						flags[i] = '1'
					}
				}
			}
			bw.WriteByte('"')
			bw.Write(flags)
			bw.WriteByte('"')
		}
		fallback := !r.Delete && r.FallbackKey != nil && len(r.Unchanged) > 0
		if fallback {
			bw.WriteString(`,"true"`)
		} else {
			bw.WriteString(`,"false"`)
		}
		for ki, k := range s.keys {
			bw.WriteByte(',')
			if !fallback || r.FallbackKey[ki].Null {
				continue
			}
			c := s.cols[k]
			text, err := encode(c.typ, c.base, r.FallbackKey[ki].Text)
			if err != nil {
				return fail(c.source, err)
			}
			writeQuoted(bw, text)
		}
		if err := bw.WriteByte('\n'); err != nil {
			return fmt.Errorf("write staging file: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write staging file: %w", err)
	}
	return nil
}

// keyIndex is the position in RowChange.Key of data column i, a key column.
func keyIndex(s shape, i int) int {
	for ki, k := range s.keys {
		if k == i {
			return ki
		}
	}
	return -1
}

// writeQuoted writes one enclosed CSV field.
func writeQuoted(w *bufio.Writer, s string) {
	w.WriteByte('"')
	for {
		i := strings.IndexByte(s, '"')
		if i < 0 {
			w.WriteString(s)
			break
		}
		w.WriteString(s[:i+1])
		w.WriteByte('"')
		s = s[i+1:]
	}
	w.WriteByte('"')
}
