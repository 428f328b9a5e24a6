package duckdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/guard"
	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/relational"
)

// fillSources reads the column versions stored at the old keys of the rows
// b moved and decides which columns they take from there
// (guard.FillSources). Nil when b moved no row.
func (d *Driver) fillSources(ctx context.Context, conn *sql.Conn, shape *tableShape, b cdc.TableBatch) ([]map[string][]cdc.Value, error) {
	keys, cols := guard.FallbackKeys(b)
	if len(keys) == 0 {
		return nil, nil
	}
	keyNames := b.KeyColumns()
	var where, sel []string
	var convs []converter
	for _, k := range keyNames {
		typ := shape.Types[k]
		conv, err := converterFor(typ)
		if err != nil {
			return nil, fmt.Errorf("key column %s: %w", k, err)
		}
		convs = append(convs, conv)
		where = append(where, ident(k)+" = CAST(CAST(? AS "+wireName(conv.wire)+") AS "+typ+")")
	}
	for _, c := range cols {
		sel = append(sel, "CAST("+colVersion("t", c)+" AS VARCHAR)")
	}
	q := "SELECT " + strings.Join(sel, ", ") + " FROM " + shape.Target + " AS t WHERE " + strings.Join(where, " AND ")
	stored := map[string]map[string]contracts.Version{}
	for _, key := range keys {
		args := make([]any, len(key))
		for i, v := range key {
			if v.Null {
				continue
			}
			a, err := convs[i].convert(v.Text)
			if err != nil {
				return nil, fmt.Errorf("old key of a moved row: %w", err)
			}
			args[i] = a
		}
		texts := make([]sql.NullString, len(cols))
		dest := make([]any, len(cols))
		for i := range texts {
			dest[i] = &texts[i]
		}
		err := conn.QueryRowContext(ctx, q, args...).Scan(dest...)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read column versions at the old keys of moved rows: %w", err)
		}
		vs := map[string]contracts.Version{}
		for i, c := range cols {
			v, err := parseVersion(texts[i])
			if err != nil {
				return nil, fmt.Errorf("read column version of %s: %w", c, err)
			}
			vs[c] = v
		}
		stored[guard.KeyID(key)] = vs
	}
	return guard.FillSources(b, func(key []cdc.Value) map[string]contracts.Version { return stored[guard.KeyID(key)] }), nil
}

// parseVersion reads a version list's text, "[lsn, seq]"; NULL is unknown.
func parseVersion(s sql.NullString) (contracts.Version, error) {
	if !s.Valid {
		return guard.Unknown, nil
	}
	return relational.ParseVersion(s.String)
}

// extraFillSQL is the statement that copies one column of a staged moved
// row from the row stored at a second old key.
func extraFillSQL(plan *stagePlan, f extraFill) (string, []any, error) {
	l := plan.layout
	var set string
	var match, from []string
	var args, fromArgs []any
	for _, c := range l.cols {
		if c.Name == f.column {
			set = ident(c.Name) + " = t." + ident(c.Name)
		}
	}
	for k, p := range l.keys {
		c := l.cols[p]
		cast := "CAST(CAST(? AS " + wireName(c.conv.wire) + ") AS " + c.Type + ")"
		match = append(match, "s."+ident(c.Name)+" = "+cast)
		from = append(from, "t."+ident(c.Name)+" = "+cast)
		a, err := c.conv.convert(f.key[k].Text)
		if err != nil {
			return "", nil, err
		}
		b, err := c.conv.convert(f.from[k].Text)
		if err != nil {
			return "", nil, err
		}
		args, fromArgs = append(args, a), append(fromArgs, b)
	}
	if set == "" {
		return "", nil, fmt.Errorf("column %s is not staged", f.column)
	}
	q := "UPDATE " + ident(plan.stage) + " AS s SET " + set + " FROM " + plan.target + " AS t WHERE " + strings.Join(from, " AND ") +
		" AND " + strings.Join(match, " AND ")
	return q, append(fromArgs, args...), nil
}

// withTruncate returns plan with the statement that invalidates columns
// older than b's truncate (relational.Syntax.TruncateInvalidate); plan
// itself when b does not truncate.
func withTruncate(plan *stagePlan, shape *tableShape, b cdc.TableBatch) *stagePlan {
	if b.Truncate == nil {
		return plan
	}
	p := *plan
	p.truncateInvalidate = syntax().TruncateInvalidate(shape.Target, shape.Types, b.KeyColumns())
	return &p
}

// reportUnknown warns about rows of the batch left with columns no change
// has provided yet (unknown, stored NULL): an update left TOASTed columns
// unchanged and no older change of the row has arrived. That is normal for
// a moment after a redelivery; it stays so for a row that existed before
// the pipeline and was never snapshotted, until a backfill of the key
// completes it: every such row is gathered for Incomplete, which the sink
// runner turns into a completion backfill. At most 10 rows per batch are
// named in the log.
func (d *Driver) reportUnknown(ctx context.Context, conn *sql.Conn, plan *stagePlan, b cdc.TableBatch) error {
	var keys, match []string
	found := sinkrunner.IncompleteRows{Table: b.Table.String()}
	for _, p := range plan.layout.keys {
		c := plan.layout.cols[p]
		found.KeyColumns = append(found.KeyColumns, c.Name)
		keys = append(keys, "CAST(t."+ident(c.Name)+" AS VARCHAR)")
		match = append(match, "t."+ident(c.Name)+" = s."+ident(c.Name))
	}
	q := "SELECT array_to_string(list_sort(list_filter(map_keys(t." + ident(relational.ColvCol) +
		"), k -> t." + ident(relational.ColvCol) + "[k] = " + unknownVersion + ")), ', '), " + strings.Join(keys, ", ") + " FROM " + plan.target + " AS t JOIN " + ident(plan.stage) +
		" AS s ON " + strings.Join(match, " AND ") + " WHERE NOT s." + ident(relational.DelCol) + " AND s." + ident(relational.ColvCol) + " IS NOT NULL AND " +
		hasUnknown("t")
	rows, err := conn.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("find rows with unknown columns: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var cols string
		key := make([]string, len(keys))
		dest := []any{&cols}
		for i := range key {
			dest = append(dest, &key[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("find rows with unknown columns: %w", err)
		}
		relational.Unknown(d.log, &found, d.cfg.Schema+"."+b.Table.Name, key, strings.Join(key, ", "), cols)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("find rows with unknown columns: %w", err)
	}
	d.report.Found(found)
	return nil
}
