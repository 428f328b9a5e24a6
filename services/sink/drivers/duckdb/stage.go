package duckdb

import (
	"database/sql/driver"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/guard"
	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/relational"
)

// stageRows converts a table batch's rows into staging rows in the layout's
// column order (see stageLayout), each value converted from PostgreSQL's
// text form to its column's wire type. fills holds, per row, the columns
// to take from the row stored at an old key (guard.FillSources; b already
// counts them as provided): the first such key is staged as the row's
// fallback key with keep flags, and columns from any other key are
// returned as extra fills. A value the destination column cannot hold
// exactly is a permanent error naming table, column, key and value.
func stageRows(b cdc.TableBatch, l stageLayout, fills []map[string][]cdc.Value) ([][]driver.Value, []extraFill, error) {
	staged := relational.Columns(l.cols, stageColumn.column)
	pos := make(map[string]int, len(l.cols))
	for i, c := range l.cols {
		pos[c.Name] = i
	}
	keyOf := make(map[int]int, len(l.keys)) // column position -> index in RowChange.Key
	for k, p := range l.keys {
		keyOf[p] = k
	}
	keepIdx := make(map[int]int, len(l.keeps)) // column position -> keep flag index
	for i, p := range l.keeps {
		keepIdx[p] = i
	}
	base := len(l.cols)
	fb := base + metaWidth
	out := make([][]driver.Value, len(b.Rows))
	var extra []extraFill
	for n := range b.Rows {
		r := &b.Rows[n]
		if len(r.Key) != len(l.keys) {
			return nil, nil, fmt.Errorf("row %d has %d key values for %d key columns", n, len(r.Key), len(l.keys))
		}
		row := make([]driver.Value, l.width())
		convert := func(p int, v cdc.Value) (driver.Value, error) {
			if v.Null {
				return nil, nil
			}
			c := l.cols[p]
			out, err := c.conv.convert(v.Text)
			if err != nil {
				return nil, sinkrunner.Permanent(fmt.Errorf("%s.%s column %q (%s), row with key %s: value %.80q: %w",
					b.Table.Schema, b.Table.Name, c.Name, c.Type, describeKey(l, r.Key), v.Text, err))
			}
			return out, nil
		}
		var fill map[string][]cdc.Value
		if fills != nil {
			fill = fills[n]
		}
		for p := range l.cols {
			v, ok := cdc.Value{Null: true}, false
			if k, isKey := keyOf[p]; isKey {
				// The key decides which row this is, for deletes too.
				v, ok = r.Key[k], true
			} else if !r.Delete && fill[l.cols[p].Name] == nil && !slices.Contains(r.Unchanged, l.cols[p].Name) {
				v, ok = r.Values[l.cols[p].Name]
			}
			if !ok {
				continue // NULL
			}
			var err error
			if row[p], err = convert(p, v); err != nil {
				return nil, nil, err
			}
		}
		for i := range l.keeps {
			row[fb+len(l.keys)+i] = false
		}
		row[base] = r.Delete
		row[base+1] = int64(r.Version.LSN)
		row[base+2] = r.Version.Seq
		row[base+3] = false
		if !r.Delete {
			if colv := relational.StagedColVersions(staged, r); colv != "" {
				row[base+4] = colv
			}
		}
		switch {
		case r.Delete:
			row[base+5], row[base+6] = int64(r.Version.LSN), r.Version.Seq
		case r.Floor != nil:
			row[base+5], row[base+6] = int64(r.Floor.LSN), r.Floor.Seq
		}
		var primary []cdc.Value
		for _, name := range slices.Sorted(maps.Keys(fill)) {
			from := fill[name]
			if primary == nil {
				primary = from
				row[base+3] = true
				for k, p := range l.keys {
					var err error
					if row[fb+k], err = convert(p, from[k]); err != nil {
						return nil, nil, err
					}
				}
			}
			if guard.KeyID(from) != guard.KeyID(primary) {
				extra = append(extra, extraFill{key: r.Key, from: from, column: name})
				continue
			}
			if i, ok := keepIdx[pos[name]]; ok {
				row[fb+len(l.keys)+i] = true
			}
		}
		out[n] = row
	}
	return out, extra, nil
}

// extraFill is a column of a moved row to take from a second old key (the
// batch moved the row twice): applied by one statement each, after the
// staged fill.
type extraFill struct {
	key, from []cdc.Value
	column    string
}

// describeKey prints a row's key for error messages: id=42, tenant="a".
func describeKey(l stageLayout, key []cdc.Value) string {
	parts := make([]string, 0, len(key))
	for k, p := range l.keys {
		if k >= len(key) {
			break
		}
		v := "NULL"
		if !key[k].Null {
			v = fmt.Sprintf("%.40q", key[k].Text)
		}
		parts = append(parts, l.cols[p].Name+"="+v)
	}
	return strings.Join(parts, ", ")
}
