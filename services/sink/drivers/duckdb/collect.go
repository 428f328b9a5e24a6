package duckdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/relational"
)

var _ sinkrunner.TombstoneCollector = (*Driver)(nil)

// CollectTombstones raises the collect floor of the destination table of t
// to floor and deletes its tombstones older than the floor
// (sinkrunner.TombstoneCollector). The floor commits before any tombstone
// goes: every guard statement sees a tombstone or the floor above it
// (sql.go, syntax: AboveFloors). DuckDB has one writer per file, the driver's own.
func (d *Driver) CollectTombstones(ctx context.Context, t contracts.Table, floor contracts.Version) (res sinkrunner.CollectResult, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return res, errors.New("collect tombstones of duckdb destination: driver is closed")
	}
	d.stopIdle()
	defer func() {
		if err != nil {
			if rerr := d.release(); rerr != nil {
				d.log.Warn("release duckdb file after a failed collection", "error", rerr)
			}
			return
		}
		d.afterCommit()
	}()
	conn, err := d.open(ctx)
	if err != nil {
		return res, err
	}
	tomb, now, err := raiseCollectFloor(ctx, conn, d.cfg.Schema, t.Name, floor)
	if err != nil || tomb == "" {
		return res, err
	}
	res.Floor = now
	del := "DELETE FROM " + tomb + " WHERE rowid IN (SELECT x.rowid FROM " + tomb + " AS x WHERE (x." + ident(relational.LSNCol) + ", x." + ident(relational.SeqCol) +
		") < (CAST($1 AS BIGINT), CAST($2 AS BIGINT)) LIMIT " + fmt.Sprint(relational.CollectChunk) + ")"
	res.Collected, err = relational.CollectChunks(ctx, func(ctx context.Context) (int64, error) {
		r, err := conn.ExecContext(ctx, del, int64(now.LSN), now.Seq)
		if err != nil {
			return 0, err
		}
		return r.RowsAffected()
	})
	if err != nil {
		return res, fmt.Errorf("collect tombstones of %s.%s: %w", d.cfg.Schema, t.Name, err)
	}
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM "+tomb).Scan(&res.Remaining); err != nil {
		return res, fmt.Errorf("count tombstones of %s.%s: %w", d.cfg.Schema, t.Name, err)
	}
	return res, nil
}

// raiseCollectFloor raises the table's collect floor to floor (never
// lowers it) and returns its tombstone table (quoted) and the floor in
// force; "" when the table is not in the registry (never written here).
func raiseCollectFloor(ctx context.Context, conn *sql.Conn, schema, table string, floor contracts.Version) (tomb string, now contracts.Version, err error) {
	var registry int
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM duckdb_tables() WHERE schema_name = $1 AND table_name = $2`,
		relational.BookkeepingSchema, relational.RegistryTable).Scan(&registry); err != nil {
		return "", now, fmt.Errorf("read bookkeeping schema: %w", err)
	}
	if registry == 0 {
		return "", now, nil
	}
	if _, err := conn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
		return "", now, fmt.Errorf("begin collect transaction: %w", err)
	}
	defer func() {
		if err != nil {
			rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, _ = conn.ExecContext(rctx, "ROLLBACK")
		}
	}()
	// A registry from before collection gets the floor's columns.
	for _, q := range bookkeepingDDL() {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return "", now, fmt.Errorf("add the collect floor to the registry: %w", err)
		}
	}
	var name string
	var lsn, seq int64
	err = conn.QueryRowContext(ctx, "SELECT tombstone_table, COALESCE(collect_lsn, 0), COALESCE(collect_seq, 0) FROM "+
		ident(relational.BookkeepingSchema, relational.RegistryTable)+" WHERE schema_name = $1 AND table_name = $2", schema, table).Scan(&name, &lsn, &seq)
	if errors.Is(err, sql.ErrNoRows) {
		_, err = conn.ExecContext(ctx, "COMMIT")
		return "", now, err
	}
	if err != nil {
		return "", now, fmt.Errorf("read the collect floor of %s.%s: %w", schema, table, err)
	}
	now = contracts.Version{LSN: uint64(lsn), Seq: seq}
	if now.Less(floor) {
		now = floor
		if _, err := conn.ExecContext(ctx, "UPDATE "+ident(relational.BookkeepingSchema, relational.RegistryTable)+
			" SET collect_lsn = CAST($3 AS BIGINT), collect_seq = CAST($4 AS BIGINT) WHERE schema_name = $1 AND table_name = $2",
			schema, table, int64(floor.LSN), floor.Seq); err != nil {
			return "", now, fmt.Errorf("raise the collect floor of %s.%s: %w", schema, table, err)
		}
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return "", now, fmt.Errorf("commit the collect floor of %s.%s: %w", schema, table, err)
	}
	var exists int
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM duckdb_tables() WHERE schema_name = $1 AND table_name = $2`,
		relational.BookkeepingSchema, name).Scan(&exists); err != nil {
		return "", now, fmt.Errorf("find tombstone table of %s.%s: %w", schema, table, err)
	}
	if exists == 0 {
		return "", now, nil
	}
	return ident(relational.BookkeepingSchema, name), now, nil
}

var _ sinkrunner.IncompleteReporter = (*Driver)(nil)

// Incomplete returns the rows the last committed Apply left with columns
// no change has provided yet (see reportUnknown).
func (d *Driver) Incomplete() []sinkrunner.IncompleteRows {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.report.Incomplete()
}
