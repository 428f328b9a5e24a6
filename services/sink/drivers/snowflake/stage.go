package snowflake

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/guard"
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
	// toast: the column's value may be older than its row's (a TOASTed
	// value an update left unchanged): it is staged with its version and
	// merged by it (see toastable).
	toast bool
	// keep: some row of the batch takes the column from the row stored at
	// an old key (guard.FillSources).
	keep bool
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
		b.WriteString(c.name + "\x01" + c.typ.stageSQL() + "\x01" + strconv.FormatBool(c.key) + "\x01" + strconv.FormatBool(c.toast) + "\x00")
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
// table (stageColumnNames): one record per row with the shape's columns,
// then _ROSETTA_DEL, _ROSETTA_LSN, _ROSETTA_SEQ, _ROSETTA_FULL, the floor
// (_ROSETTA_FLSN, _ROSETTA_FSEQ), _ROSETTA_FB, _ROSETTA_KEEP, the fallback
// key columns and the version key of each TOASTable column's value.
//
// rows are the batch's rows with the columns fills names already counted
// as provided (guard.Filled): those are staged NULL and filled in the
// staging table from the row stored at the old key (fillStageSQL). fills
// holds, per row, the columns to take and the old key
// (guard.FillSources); the first key of a row is staged as its fallback
// key, and columns from any other key are returned as extra fills.
//
// Every non-NULL value is enclosed in double quotes (inner quotes doubled)
// and NULL is an empty unenclosed field, so with FIELD_OPTIONALLY_ENCLOSED_BY
// = '"', EMPTY_FIELD_AS_NULL = TRUE and no escape characters, NULL and the
// empty string stay distinct and every other byte, newlines and
// backslashes included, is loaded as is.
func writeStageCSV(w io.Writer, table contracts.Table, s shape, rows []cdc.RowChange, fills []map[string][]cdc.Value) ([]extraFill, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	flags := make([]byte, len(s.cols))
	var scratch []byte
	var extra []extraFill
	for ri := range rows {
		r := &rows[ri]
		fail := func(col string, err error) error {
			return &RowError{Table: table.String(), Column: col, Version: r.Version, Err: err}
		}
		var fill map[string][]cdc.Value
		if fills != nil {
			fill = fills[ri]
		}
		for i, c := range s.cols {
			if i > 0 {
				bw.WriteByte(',')
			}
			var v cdc.Value
			switch {
			case c.key:
				v = r.Key[keyIndex(s, i)]
			case r.Delete, fill[c.source] != nil, slices.Contains(r.Unchanged, c.source):
				v = cdc.Value{Null: true}
			default:
				var ok bool
				if v, ok = r.Values[c.source]; !ok {
					v = cdc.Value{Null: true}
				}
			}
			if v.Null {
				continue
			}
			text, err := encode(c.typ, c.base, v.Text)
			if err != nil {
				return nil, fail(c.source, err)
			}
			writeQuoted(bw, text)
		}
		full := true
		if !r.Delete {
			for _, c := range s.cols {
				if c.toast && guard.ProvidedVersion(r, c.source) != r.Version {
					full = false
				}
			}
		}
		scratch = append(scratch[:0], `,"`...)
		scratch = strconv.AppendBool(scratch, r.Delete)
		scratch = append(scratch, `","`...)
		scratch = strconv.AppendUint(scratch, r.Version.LSN, 10)
		scratch = append(scratch, `","`...)
		scratch = strconv.AppendInt(scratch, r.Version.Seq, 10)
		scratch = append(scratch, `","`...)
		scratch = strconv.AppendBool(scratch, full)
		scratch = append(scratch, `",`...)
		var floor *contracts.Version
		switch {
		case r.Delete:
			floor = &r.Version
		case r.Floor != nil:
			floor = r.Floor
		}
		if floor != nil {
			scratch = append(scratch, '"')
			scratch = strconv.AppendUint(scratch, floor.LSN, 10)
			scratch = append(scratch, `","`...)
			scratch = strconv.AppendInt(scratch, floor.Seq, 10)
			scratch = append(scratch, '"')
		} else {
			scratch = append(scratch, ',')
		}
		bw.Write(scratch)
		var primary []cdc.Value
		for i := range flags {
			flags[i] = '0'
		}
		for _, name := range slices.Sorted(maps.Keys(fill)) {
			from := fill[name]
			if primary == nil {
				primary = from
			}
			if guard.KeyID(from) != guard.KeyID(primary) {
				extra = append(extra, extraFill{key: r.Key, from: from, column: name})
				continue
			}
			for i, c := range s.cols {
				if c.source == name && !c.key {
					flags[i] = '1'
				}
			}
		}
		if primary != nil {
			bw.WriteString(`,"true","`)
			bw.Write(flags)
			bw.WriteByte('"')
		} else {
			bw.WriteString(`,"false",`)
		}
		for ki, k := range s.keys {
			bw.WriteByte(',')
			if primary == nil || primary[ki].Null {
				continue
			}
			c := s.cols[k]
			text, err := encode(c.typ, c.base, primary[ki].Text)
			if err != nil {
				return nil, fail(c.source, err)
			}
			writeQuoted(bw, text)
		}
		for _, c := range s.cols {
			if !c.toast {
				continue
			}
			bw.WriteByte(',')
			if r.Delete {
				continue
			}
			if v := guard.ProvidedVersion(r, c.source); v != r.Version {
				bw.WriteByte('"')
				bw.WriteString(versionKey(v))
				bw.WriteByte('"')
			}
		}
		if err := bw.WriteByte('\n'); err != nil {
			return nil, fmt.Errorf("write staging file: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("write staging file: %w", err)
	}
	return extra, nil
}

// extraFill is a column of a moved row to take from a second old key (the
// batch moved the row twice): one statement each, after the staged fill.
type extraFill struct {
	key, from []cdc.Value
	column    string // source name
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
