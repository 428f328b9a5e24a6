package duckdb

import (
	"database/sql/driver"
	"fmt"
	"strings"

	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
)

// stageRows converts a table batch's rows into staging rows in the layout's
// column order (see stageLayout), each value converted from PostgreSQL's
// text form to its column's wire type. It reports whether any row takes
// kept values from a fallback key. A value the destination column cannot
// hold exactly is a permanent error naming table, column, key and value.
func stageRows(b cdc.TableBatch, l stageLayout) ([][]driver.Value, bool, error) {
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
	out := make([][]driver.Value, len(b.Rows))
	anyFallback := false
	for n, r := range b.Rows {
		if len(r.Key) != len(l.keys) {
			return nil, false, fmt.Errorf("row %d has %d key values for %d key columns", n, len(r.Key), len(l.keys))
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
					b.Table.Schema, b.Table.Table, c.Name, c.Type, describeKey(l, r.Key), v.Text, err))
			}
			return out, nil
		}
		for p := range l.cols {
			v, ok := cdc.Value{Null: true}, false
			if k, isKey := keyOf[p]; isKey {
				// The key decides which row this is, for deletes too.
				v, ok = r.Key[k], true
			} else if !r.Delete {
				v, ok = r.Values[l.cols[p].Name]
			}
			if !ok {
				continue // NULL
			}
			var err error
			if row[p], err = convert(p, v); err != nil {
				return nil, false, err
			}
		}
		unchanged := 0
		if !r.Delete {
			for _, name := range r.Unchanged {
				if p, ok := pos[name]; ok {
					if i, ok := keepIdx[p]; ok {
						row[base+4+len(l.keys)+i] = true
						unchanged++
					}
				}
			}
		}
		for i := range l.keeps {
			if row[base+4+len(l.keys)+i] == nil {
				row[base+4+len(l.keys)+i] = false
			}
		}
		fallback := !r.Delete && unchanged > 0 && len(r.FallbackKey) == len(l.keys)
		row[base] = r.Delete
		row[base+1] = int64(r.Version.LSN)
		row[base+2] = r.Version.Seq
		row[base+3] = fallback
		if fallback {
			anyFallback = true
			for k, p := range l.keys {
				var err error
				if row[base+4+k], err = convert(p, r.FallbackKey[k]); err != nil {
					return nil, false, err
				}
			}
		}
		out[n] = row
	}
	return out, anyFallback, nil
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
