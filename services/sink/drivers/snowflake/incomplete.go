package snowflake

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
)

var _ sinkrunner.IncompleteReporter = (*Driver)(nil)

// Incomplete returns the rows the last Apply that committed left with
// columns no change has provided yet (sinkrunner.IncompleteReporter): the
// runner has them completed from the source by a completion backfill.
func (d *Driver) Incomplete() []sinkrunner.IncompleteRows {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.report.Incomplete()
}

// partialRows reports whether the job's batch holds an upsert that left
// columns unchanged: only such a batch can leave a row with an unknown
// column (a delete or truncate that arrives late only makes columns
// unknown in rows a newer change wrote, which that change's own batch
// reported if it was partial).
func (j *job) partialRows() bool {
	for _, r := range j.b.Rows {
		if !r.Delete && len(r.Unchanged) > 0 {
			return true
		}
	}
	return false
}

// findUnknown gathers, inside the transaction after the MERGE, the batch's
// upserted rows whose stored record has an unknown column (entry 0): an
// update left TOASTed columns unchanged and the row was missing, or held
// no value older than the update. The staged version identifies the row
// (one state per key in a collapsed batch); the key is reported in the
// source's text form, as the batch carries it. Keys holding NULL (a
// REPLICA IDENTITY FULL table) cannot be read back by a backfill filter
// and are left out: the log names them.
func (d *Driver) findUnknown(ctx context.Context, tx *sql.Tx, j *job) error {
	// Moved rows are re-read from the source whatever they hold
	// (guard.MovedKeys).
	d.report.Moved(j.b)
	if len(j.names) == 0 || !j.partialRows() {
		return nil
	}
	q := "SELECT " + col("s", lsnCol) + ", " + col("s", seqCol) + " FROM " + j.o.stage + " AS s JOIN " + j.o.target +
		" AS t ON " + keyMatch("t", "s", j.shape) + " WHERE NOT " + col("s", delCol) + " AND " + hasUnknown("t", j.names)
	rows, err := tx.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("find rows with unknown columns: %w", err)
	}
	defer rows.Close()
	unknown := map[contracts.Version]bool{}
	for rows.Next() {
		var lsn uint64
		var seq int64
		if err := rows.Scan(&lsn, &seq); err != nil {
			return fmt.Errorf("find rows with unknown columns: %w", err)
		}
		unknown[contracts.Version{LSN: lsn, Seq: seq}] = true
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("find rows with unknown columns: %w", err)
	}
	if len(unknown) == 0 {
		return nil
	}
	found := sinkrunner.IncompleteRows{Table: j.b.Table.String()}
	for _, k := range j.shape.keyCols() {
		found.KeyColumns = append(found.KeyColumns, k.source)
	}
	logged := 0
rowsLoop:
	for _, r := range j.b.Rows {
		if r.Delete || !unknown[r.Version] {
			continue
		}
		key := make([]string, len(r.Key))
		for i, v := range r.Key {
			if v.Null {
				d.log.Warn("row with a NULL key has columns no change has provided yet; a backfill filter cannot select it, "+
					"so it is not completed automatically: backfill the table to complete it", "table", j.table)
				continue rowsLoop
			}
			key[i] = v.Text
		}
		found.Keys = append(found.Keys, key)
		if logged < 10 {
			logged++
			d.log.Warn("row has columns no change has provided yet: an update left them unchanged (TOASTed) and no older change of "+
				"the row has arrived; they stay NULL until one does, or the completion backfill fills them",
				"table", j.table, "key", strings.Join(key, ","))
		}
	}
	d.report.Found(found)
	return nil
}
