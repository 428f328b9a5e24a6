package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/guard"
	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/relational"
)

// withTruncate returns plan with the statement that invalidates columns
// older than b's truncate (relational.Syntax.TruncateInvalidate); plan
// itself when b does not truncate.
func withTruncate(plan *stagePlan, shape *tableShape, b cdc.TableBatch) *stagePlan {
	if b.Truncate == nil {
		return plan
	}
	p := *plan
	p.truncateInvalidate = colvSQL{has: shape.Has(relational.ColvCol)}.syntax().TruncateInvalidate(shape.Target, shape.Types, b.KeyColumns())
	return &p
}

// fillMoved completes the rows of b whose key changed (guard.Fill) from
// the rows stored at their old keys, read in one round trip. b is returned
// unchanged when it moved no row.
func fillMoved(ctx context.Context, tx pgx.Tx, plan *stagePlan, b cdc.TableBatch) (cdc.TableBatch, error) {
	keys, cols := guard.FallbackKeys(b)
	if len(keys) == 0 {
		return b, nil
	}
	var keyCols []stageColumn
	for _, c := range plan.cols {
		if c.Key {
			keyCols = append(keyCols, c)
		}
	}
	var where, sel []string
	for i, k := range keyCols {
		where = append(where, ident(k.Name)+" = $"+fmt.Sprint(i+1)+"::text::"+k.Type)
	}
	for _, c := range cols {
		sel = append(sel, ident(c)+"::text", plan.colv.colVersion("t", c)+"::text")
	}
	q := "SELECT " + strings.Join(sel, ", ") + " FROM " + plan.target + " AS t WHERE " + strings.Join(where, " AND ")
	var batch pgx.Batch
	for _, key := range keys {
		args := make([]any, len(key))
		for i, v := range key {
			if !v.Null {
				args[i] = v.Text
			}
		}
		batch.Queue(q, args...)
	}
	stored := map[string]*guard.Stored{}
	br := tx.SendBatch(ctx, &batch)
	for _, key := range keys {
		dest := make([]any, 2*len(cols))
		texts := make([]*string, 2*len(cols))
		for i := range dest {
			dest[i] = &texts[i]
		}
		err := br.QueryRow().Scan(dest...)
		if err == pgx.ErrNoRows {
			continue
		}
		if err != nil {
			br.Close()
			return b, fmt.Errorf("read rows at the old keys of moved rows: %w", err)
		}
		st := &guard.Stored{Values: map[string]cdc.Value{}, ColVersions: map[string]contracts.Version{}}
		for i, c := range cols {
			if texts[2*i] == nil {
				st.Values[c] = cdc.Value{Null: true}
			} else {
				st.Values[c] = cdc.Value{Text: *texts[2*i]}
			}
			v, err := parseVersion(texts[2*i+1])
			if err != nil {
				br.Close()
				return b, fmt.Errorf("read column version of %s: %w", c, err)
			}
			st.ColVersions[c] = v
		}
		stored[guard.KeyID(key)] = st
	}
	if err := br.Close(); err != nil {
		return b, fmt.Errorf("read rows at the old keys of moved rows: %w", err)
	}
	return guard.Fill(b, func(key []cdc.Value) *guard.Stored { return stored[guard.KeyID(key)] }), nil
}

// parseVersion reads a version array's text, "[lsn, seq]"; NULL is unknown.
func parseVersion(s *string) (contracts.Version, error) {
	if s == nil {
		return guard.Unknown, nil
	}
	return relational.ParseVersion(*s)
}

// reportPlan is a table whose staged batch held partial changes.
type reportPlan struct {
	table  string
	source string // the source table, schema.table
	plan   *stagePlan
}

// reportUnknown warns about rows of the batch left with columns no change
// has provided yet (unknown, stored NULL): an update left TOASTed columns
// unchanged and no older change of the row has arrived. That is normal for
// a moment after a redelivery; it stays so for a row that existed before
// the pipeline and was never snapshotted, until a backfill of the key
// completes it: every such row is gathered for Incomplete, which the sink
// runner turns into a completion backfill. At most 10 rows per batch are
// named in the log.
func (d *Driver) reportUnknown(ctx context.Context, tx pgx.Tx, p reportPlan) error {
	var keys, match []string
	found := sinkrunner.IncompleteRows{Table: p.source}
	for _, c := range p.plan.cols {
		if c.Key {
			found.KeyColumns = append(found.KeyColumns, c.Name)
			keys = append(keys, "t."+ident(c.Name)+"::text")
			match = append(match, "t."+ident(c.Name)+" = s."+ident(c.Name))
		}
	}
	q := "SELECT ARRAY[" + strings.Join(keys, ", ") + "], ARRAY(SELECT e.key FROM jsonb_each(t." + ident(relational.ColvCol) + ") AS e WHERE e.value = " +
		unknownVersion + " ORDER BY e.key) FROM " + p.plan.target + " AS t JOIN " + ident(p.plan.stage) + " AS s ON " + strings.Join(match, " AND ") +
		" WHERE NOT s." + ident(relational.DelCol) + " AND s." + ident(relational.ColvCol) + " IS NOT NULL AND " + p.plan.colv.hasUnknown("t")
	rows, err := tx.Query(ctx, q)
	if err != nil {
		return fmt.Errorf("find rows of %s with unknown columns: %w", p.table, err)
	}
	defer rows.Close()
	for rows.Next() {
		var key, cols []string
		if err := rows.Scan(&key, &cols); err != nil {
			return fmt.Errorf("find rows of %s with unknown columns: %w", p.table, err)
		}
		relational.Unknown(d.log, &found, p.table, key, key, cols)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("find rows of %s with unknown columns: %w", p.table, err)
	}
	d.report.Found(found)
	return nil
}

// lockTables takes, in name order, a transaction-scoped advisory lock per
// destination table of the batch. The version guards compare with the
// stored row and then write, which is exact for one writer; two sinks
// applying the same table at once (a sink frozen past the ack wait while
// JetStream hands its messages to another) could each miss the other's
// uncommitted tombstone or row and resurrect a deleted key or lose an
// update (faults/ SIGSTOPSinkPastAckWait). Serializing writers per table
// keeps the guards exact; the name order keeps two sinks from deadlocking.
func lockTables(ctx context.Context, tx pgx.Tx, schema string, work []cdc.TableBatch) error {
	names := make([]string, 0, len(work))
	for _, b := range work {
		names = append(names, schema+"."+b.Table.Name)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	for _, n := range names {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", "rosetta apply "+n); err != nil {
			return fmt.Errorf("lock %s for apply: %w", n, err)
		}
	}
	return nil
}
