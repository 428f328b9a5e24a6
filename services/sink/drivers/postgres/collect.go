package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/relational"
)

var _ sinkrunner.TombstoneCollector = (*Driver)(nil)

// CollectTombstones raises the collect floor of the destination table of t
// to floor and deletes its tombstones older than the floor
// (sinkrunner.TombstoneCollector).
//
// The floor commits first, in a transaction holding the table's apply lock
// (lockTables), and the deletions follow: every guard statement of an
// Apply reads, in one snapshot, either a tombstone or a floor above it, so
// a change older than a collected tombstone is refused at every moment
// (sql.go, syntax: AboveFloors).
func (d *Driver) CollectTombstones(ctx context.Context, t contracts.Table, floor contracts.Version) (res sinkrunner.CollectResult, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	defer func() {
		if err != nil {
			d.afterError(err)
		}
	}()
	conn, err := d.connect(ctx)
	if err != nil {
		return res, err
	}
	var tomb string
	tomb, res.Floor, err = d.raiseCollectFloor(ctx, conn, t.Name, floor)
	if err != nil || tomb == "" {
		return res, err
	}
	del := "DELETE FROM " + tomb + " WHERE ctid = ANY(ARRAY(SELECT x.ctid FROM " + tomb + " AS x WHERE (x." + ident(relational.LSNCol) +
		", x." + ident(relational.SeqCol) + ") < ($1, $2) LIMIT " + fmt.Sprint(relational.CollectChunk) + "))"
	res.Collected, err = relational.CollectChunks(ctx, func(ctx context.Context) (int64, error) {
		tag, err := conn.Exec(ctx, del, int64(res.Floor.LSN), res.Floor.Seq)
		return tag.RowsAffected(), err
	})
	if err != nil {
		return res, fmt.Errorf("collect tombstones of %s.%s: %w", d.cfg.Schema, t.Name, err)
	}
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+tomb).Scan(&res.Remaining); err != nil {
		return res, fmt.Errorf("count tombstones of %s.%s: %w", d.cfg.Schema, t.Name, err)
	}
	return res, nil
}

// ensureCollectFloor adds the collect floor's columns to the registry when
// they are missing, under the DDL lock.
func ensureCollectFloor(ctx context.Context, tx pgx.Tx) error {
	var has bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1)
		AND attname = 'collect_seq' AND NOT attisdropped)`, ident(bookkeepingSchema, relational.RegistryTable)).Scan(&has); err != nil {
		return fmt.Errorf("read the registry's columns: %w", err)
	}
	if has {
		return nil
	}
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", ddlLockKey); err != nil {
		return fmt.Errorf("lock for ddl: %w", err)
	}
	for _, q := range (colvSQL{}).syntax().CollectFloorDDL() {
		if _, err := tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("add the collect floor to the registry: %w", err)
		}
	}
	return nil
}

// raiseCollectFloor raises the table's collect floor to floor (never
// lowers it) and returns its tombstone table (quoted) and the floor now in
// force; "" when the table is not in the registry (never written here).
func (d *Driver) raiseCollectFloor(ctx context.Context, conn *pgx.Conn, table string, floor contracts.Version) (tomb string, now contracts.Version, err error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return "", now, fmt.Errorf("begin collect transaction: %w", err)
	}
	defer func() {
		if err != nil {
			rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = tx.Rollback(rctx)
		}
	}()
	var registry bool
	if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", ident(bookkeepingSchema, relational.RegistryTable)).Scan(&registry); err != nil {
		return "", now, fmt.Errorf("read bookkeeping schema: %w", err)
	}
	if !registry {
		return "", now, tx.Commit(ctx)
	}
	// The apply lock first, then (in ensureCollectFloor) the DDL lock: the
	// order Apply takes them in.
	if err := lockTables(ctx, tx, d.cfg.Schema, []cdc.TableBatch{{Table: contracts.Table{Name: table}}}); err != nil {
		return "", now, err
	}
	// A registry from before collection that no Apply of this driver has
	// updated yet.
	if err := ensureCollectFloor(ctx, tx); err != nil {
		return "", now, err
	}
	var name string
	var lsn, seq int64
	err = tx.QueryRow(ctx, "UPDATE "+ident(bookkeepingSchema, relational.RegistryTable)+" AS w SET collect_lsn = GREATEST(w.collect_lsn, $3),"+
		" collect_seq = CASE WHEN (w.collect_lsn, w.collect_seq) < ($3, $4) THEN $4 ELSE w.collect_seq END"+
		" WHERE w.schema_name = $1 AND w.table_name = $2 RETURNING w.tombstone_table, w.collect_lsn, w.collect_seq",
		d.cfg.Schema, table, int64(floor.LSN), floor.Seq).Scan(&name, &lsn, &seq)
	if err == pgx.ErrNoRows {
		return "", now, tx.Commit(ctx)
	}
	if err != nil {
		return "", now, fmt.Errorf("raise the collect floor of %s.%s: %w", d.cfg.Schema, table, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return "", now, fmt.Errorf("commit the collect floor of %s.%s: %w", d.cfg.Schema, table, err)
	}
	var exists bool
	tomb = ident(bookkeepingSchema, name)
	if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", tomb).Scan(&exists); err != nil {
		return "", now, fmt.Errorf("find tombstone table of %s.%s: %w", d.cfg.Schema, table, err)
	}
	if !exists {
		tomb = ""
	}
	return tomb, contracts.Version{LSN: uint64(lsn), Seq: seq}, nil
}

var _ sinkrunner.IncompleteReporter = (*Driver)(nil)

// Incomplete returns the rows the last committed Apply left with columns
// no change has provided yet (see reportUnknown).
func (d *Driver) Incomplete() []sinkrunner.IncompleteRows {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.report.Incomplete()
}
