package snowflake

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/guard"
)

// guardShape completes a job for the version guard: which columns carry
// their own versions (toastable, or named by a row's unchanged columns or
// column versions), which columns moved rows take from the rows stored at
// their old keys (read here, before the batch is staged: one query, only
// for batches that move rows), the merge options, and whether the
// tombstones must follow the rows' completeness.
func (d *Driver) guardShape(ctx context.Context, conn *sql.Conn, j *job) error {
	partial := map[string]bool{}
	for _, r := range j.b.Rows {
		for _, c := range r.Unchanged {
			partial[c] = true
		}
		for c := range r.ColVersions {
			partial[c] = true
		}
		for c := range r.Moved {
			partial[c] = true
		}
		j.guarded = j.guarded || r.Delete || r.Floor != nil || len(r.Unchanged) > 0 || len(r.ColVersions) > 0
	}
	for i := range j.shape.cols {
		c := &j.shape.cols[i]
		c.toast = !c.key && (toastable(c.base) || partial[c.source] && c.source != "")
	}
	if j.st.exists {
		j.names = tableDataColumns(j.st, j.shape)
	}
	j.opt = mergeOptions{soft: d.cfg.SoftDelete, clearDeleted: !d.cfg.SoftDelete && j.st.hasDeleted, others: otherColumns(j.names, j.shape)}
	if len(j.b.Rows) == 0 || !j.st.exists {
		return nil
	}
	keys, cols := guard.FallbackKeys(j.b)
	if len(keys) == 0 {
		return nil
	}
	stored, err := d.fallbackVersions(ctx, conn, j, keys, cols)
	if err != nil {
		return err
	}
	j.fills = guard.FillSources(j.b, func(key []cdc.Value) map[string]contracts.Version { return stored[guard.KeyID(key)] })
	// The filled values are staged NULL and copied in the staging table
	// (fillStage); the batch counts them as provided by the move.
	j.b = guard.Filled(j.b, j.fills, func(int, string, []cdc.Value) cdc.Value { return cdc.Value{Null: true} })
	for _, f := range j.fills {
		for name := range f {
			for i := range j.shape.cols {
				if j.shape.cols[i].source == name {
					j.shape.cols[i].keep = true
				}
			}
		}
	}
	return nil
}

// fallbackVersions reads the column versions stored at the old keys of
// the batch's moved rows (source column names), by key.
func (d *Driver) fallbackVersions(ctx context.Context, conn *sql.Conn, j *job, keys [][]cdc.Value, cols []string) (map[string]map[string]contracts.Version, error) {
	var names []string
	for _, c := range cols {
		for _, sc := range j.shape.cols {
			if sc.source == c {
				names = append(names, sc.name)
			}
		}
	}
	if len(names) != len(cols) {
		return nil, fmt.Errorf("moved columns %v are not all in the batch's columns", cols)
	}
	var args []any
	for _, key := range keys {
		for ki, k := range j.shape.keys {
			a, err := keyBind(j.shape.cols[k], key[ki])
			if err != nil {
				return nil, err
			}
			args = append(args, a)
		}
	}
	target := qualified(d.cfg.database, d.cfg.schema, j.table)
	rows, err := conn.QueryContext(ctx, fallbackVersionsSQL(target, j.shape, names, len(keys)), args...)
	if err != nil {
		return nil, fmt.Errorf("read column versions at the old keys of moved rows: %w", err)
	}
	defer rows.Close()
	out := map[string]map[string]contracts.Version{}
	for rows.Next() {
		texts := make([]sql.NullString, len(names)+1)
		dest := make([]any, len(texts))
		for i := range texts {
			dest[i] = &texts[i]
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("read column versions at the old keys of moved rows: %w", err)
		}
		i, err := strconv.Atoi(texts[0].String)
		if err != nil || i < 0 || i >= len(keys) {
			return nil, fmt.Errorf("read column versions at the old keys of moved rows: key index %q", texts[0].String)
		}
		vs := map[string]contracts.Version{}
		for ci, c := range cols {
			v, err := parseVersionKey(texts[ci+1].String)
			if err != nil {
				return nil, fmt.Errorf("read column version of %s: %w", c, err)
			}
			vs[c] = v
		}
		out[guard.KeyID(keys[i])] = vs
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read column versions at the old keys of moved rows: %w", err)
	}
	return out, nil
}

// keyBind is a key value as a bind: its staged text, cast in the
// statement to the column's type; nil for NULL.
func keyBind(c stageColumn, v cdc.Value) (any, error) {
	if v.Null {
		return nil, nil
	}
	text, err := encode(c.typ, c.base, v.Text)
	if err != nil {
		return nil, fmt.Errorf("key column %s: %w", c.source, err)
	}
	return text, nil
}

// fillStage copies into the staging table the columns moved rows take
// from the rows stored at their old keys (inside the transaction, before
// the batch's truncate and floors).
func (d *Driver) fillStage(ctx context.Context, tx *sql.Tx, j *job) error {
	if j.fills == nil {
		return nil
	}
	if slices.ContainsFunc(j.fills, func(f map[string][]cdc.Value) bool { return len(f) > 0 }) {
		if _, err := tx.ExecContext(ctx, fillStageSQL(j.o, j.shape)); err != nil {
			return fmt.Errorf("fill moved rows: %w", err)
		}
	}
	for _, f := range j.extra {
		var c stageColumn
		for _, sc := range j.shape.cols {
			if sc.source == f.column {
				c = sc
			}
		}
		var args []any
		for _, key := range [][]cdc.Value{f.from, f.key} {
			for ki, k := range j.shape.keys {
				a, err := keyBind(j.shape.cols[k], key[ki])
				if err != nil {
					return err
				}
				args = append(args, a)
			}
		}
		if _, err := tx.ExecContext(ctx, extraFillSQL(j.o, j.shape, c), args...); err != nil {
			return fmt.Errorf("fill moved rows from a second old key: %w", err)
		}
	}
	return nil
}
