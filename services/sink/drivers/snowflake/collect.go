package snowflake

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
)

var _ sinkrunner.TombstoneCollector = (*Driver)(nil)

// The collect floor's columns in the registry (_ROSETTA_TABLES).
const (
	collectLSNCol = "COLLECT_LSN"
	collectSeqCol = "COLLECT_SEQ"
)

// defaultCollectChunk is the most tombstones one DELETE removes (unless
// many share one version), so that a backlog of millions is collected in
// statements of bounded size.
const defaultCollectChunk = 10000

// CollectTombstones raises the collect floor of the destination table of t
// to floor and deletes its tombstones older than the floor
// (sinkrunner.TombstoneCollector).
//
// The floor commits first (its own statement: autocommit), the deletions
// follow: Apply reads the floor with the truncate watermarks at the start
// of its transaction (readWatermarks) and refuses, in its MERGE, an insert
// or a late fill older than it (guardBound), which is what the collected
// tombstones refused. Apply and CollectTombstones of one driver are
// serialized by its mutex, and the runner collects no table another
// pipeline writes, so no Apply reads the tombstones of a table being
// collected with a floor read before it was raised.
func (d *Driver) CollectTombstones(ctx context.Context, t contracts.Table, floor contracts.Version) (res sinkrunner.CollectResult, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	defer func() {
		if err != nil {
			err = classify(err)
			d.afterError(ctx, err, nil)
		}
	}()
	lsn, err := bindLSN(floor.LSN)
	if err != nil {
		return res, err
	}
	conn, err := d.connect(ctx)
	if err != nil {
		return res, err
	}
	table := destName(t.Name)
	target := qualified(d.cfg.database, d.cfg.schema, table)
	st, err := describe(ctx, conn, target)
	if err != nil || !st.exists {
		// Never written here: nothing to collect, no floor to keep.
		return res, err
	}
	if err := d.ensureRegistry(ctx, conn); err != nil {
		return res, err
	}
	registry := qualified(d.cfg.database, d.cfg.schema, registryTable)
	if _, err := conn.ExecContext(ctx, raiseCollectFloorSQL(registry), table, lsn, floor.Seq); err != nil {
		return res, fmt.Errorf("raise the collect floor of %s: %w", table, err)
	}
	if res.Floor, err = readCollectFloor(ctx, conn, registry, table); err != nil {
		return res, err
	}
	tomb := qualified(d.cfg.database, d.cfg.schema, tombPrefix+table)
	ts, err := describe(ctx, conn, tomb)
	if err != nil || !ts.exists {
		return res, err // soft delete, or no key ever deleted: no tombstones
	}
	if res.Collected, err = d.deleteTombstones(ctx, conn, tomb, res.Floor); err != nil {
		return res, fmt.Errorf("collect tombstones of %s: %w", table, err)
	}
	var n string
	if err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+tomb).Scan(&n); err != nil {
		return res, fmt.Errorf("count tombstones of %s: %w", table, err)
	}
	if res.Remaining, err = strconv.ParseInt(n, 10, 64); err != nil {
		return res, fmt.Errorf("count tombstones of %s: %w", table, err)
	}
	return res, nil
}

// deleteTombstones deletes the tombstones older than floor, a chunk per
// statement: Snowflake's DELETE has no LIMIT, so each statement deletes up
// to the version of the chunk-th oldest one (more only where tombstones
// share that version), and the last one whatever is left below the floor.
func (d *Driver) deleteTombstones(ctx context.Context, conn *sql.Conn, tomb string, floor contracts.Version) (int64, error) {
	chunk := d.collectChunk
	if chunk <= 0 {
		chunk = defaultCollectChunk
	}
	lsn := int64(floor.LSN) // checked by bindLSN
	var total int64
	for {
		var cl, cs string
		err := conn.QueryRowContext(ctx, collectCutSQL(tomb, chunk), lsn, lsn, floor.Seq).Scan(&cl, &cs)
		last := errors.Is(err, sql.ErrNoRows)
		q, args := truncateTombsSQL(tomb), []any{lsn, lsn, floor.Seq}
		if !last {
			if err != nil {
				return total, fmt.Errorf("find the next chunk: %w", err)
			}
			cut, err := parseVersion(cl, cs)
			if err != nil {
				return total, err
			}
			q, args = collectUpToSQL(tomb), []any{int64(cut.LSN), int64(cut.LSN), cut.Seq}
		}
		r, err := conn.ExecContext(ctx, q, args...)
		if err != nil {
			return total, err
		}
		n, err := r.RowsAffected()
		if err != nil {
			return total, err
		}
		total += n
		if last {
			return total, nil
		}
	}
}

// readCollectFloor reads a table's collect floor (zero when unregistered).
func readCollectFloor(ctx context.Context, conn *sql.Conn, registry, table string) (contracts.Version, error) {
	var lsn, seq string
	err := conn.QueryRowContext(ctx, readCollectFloorSQL(registry), table).Scan(&lsn, &seq)
	if errors.Is(err, sql.ErrNoRows) {
		return contracts.Version{}, nil
	}
	if err != nil {
		return contracts.Version{}, fmt.Errorf("read the collect floor of %s: %w", table, err)
	}
	return parseVersion(lsn, seq)
}

func parseVersion(lsn, seq string) (contracts.Version, error) {
	l, err1 := strconv.ParseUint(lsn, 10, 64)
	s, err2 := strconv.ParseInt(seq, 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return contracts.Version{}, fmt.Errorf("read version %s/%s: %w", lsn, seq, err)
	}
	return contracts.Version{LSN: l, Seq: s}, nil
}

// ensureRegistry creates the registry, once per session, and gives one
// created before collection the collect floor's columns (checked first:
// DDL commits, and most registries have them).
func (d *Driver) ensureRegistry(ctx context.Context, conn *sql.Conn) error {
	if d.registry {
		return nil
	}
	registry := qualified(d.cfg.database, d.cfg.schema, registryTable)
	if _, err := conn.ExecContext(ctx, createRegistrySQL(registry)); err != nil {
		return fmt.Errorf("create %s: %w", registryTable, err)
	}
	st, err := describe(ctx, conn, registry)
	if err != nil {
		return err
	}
	for _, name := range []string{collectLSNCol, collectSeqCol} {
		if _, ok := st.types[name]; ok {
			continue
		}
		if _, err := conn.ExecContext(ctx, addRegistryColumnSQL(registry, name)); err != nil {
			return fmt.Errorf("add the collect floor to %s: %w", registryTable, err)
		}
	}
	d.registry = true
	return nil
}

// guardBounds are a table's truncate watermark and collect floor, read at
// the start of Apply's transaction.
type guardBounds struct {
	truncate, collect contracts.Version
}

// exclusive is the version a change must be newer than to be inserted or
// to fill a column of a stored row (mergeSQL's watermark): newer than the
// truncate and not older than the collect floor. Sequence numbers are
// integers, so "not older than (L, S)" is "newer than (L, S-1)"; -1 is
// below every sequence number.
func (g guardBounds) exclusive() contracts.Version {
	if g.collect == (contracts.Version{}) {
		return g.truncate
	}
	below := contracts.Version{LSN: g.collect.LSN, Seq: g.collect.Seq - 1}
	if g.truncate.Less(below) {
		return below
	}
	return g.truncate
}
