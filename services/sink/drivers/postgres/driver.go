package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/colmark"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/relational"
)

var _ sinkrunner.Driver = (*Driver)(nil)

// ddlLockKey is the advisory lock every Rosetta sink takes (for the rest of
// its transaction) before creating or altering anything in a destination
// database, so that sinks of several pipelines sharing one destination do
// not race on CREATE ... IF NOT EXISTS.
const ddlLockKey int64 = 0x526f7365747461 // "Rosetta"

// Driver applies batches to one PostgreSQL destination over one connection,
// opened on first use and reopened after it breaks. Safe for use by one
// runner; Apply calls are serialized.
type Driver struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	conn   *pgx.Conn
	tables map[string]*tableShape // by destination table name
	stages map[string]*stagePlan  // by shape signature; temp tables of conn
	nextID int
	// report gathers the rows the Apply in progress leaves with unknown
	// columns, for Incomplete once it committed.
	report relational.Report
}

// stagePlan is a staging table on the current connection and the SQL that
// applies it to its destination table.
type stagePlan struct {
	cols    []stageColumn
	sql     statements
	hasTomb bool
	target  string
	stage   string
	colv    colvSQL
	// truncateInvalidate turns columns older than a truncate ($1, $2)
	// into unknown in every newer row; set for batches that truncate,
	// from the destination table's columns.
	truncateInvalidate string
}

// New returns a driver for cfg; it connects on the first Apply, so a
// destination that is down shows up as a retried Apply error.
func New(cfg Config, log *slog.Logger) *Driver {
	return &Driver{cfg: cfg, log: log, tables: map[string]*tableShape{}, stages: map[string]*stagePlan{}}
}

// Factory builds a driver from a destination's JSON config
// (configstore.Destination.ConfigWithSecrets). It does not connect.
func Factory(_ context.Context, config json.RawMessage, log *slog.Logger) (sinkrunner.Driver, error) {
	return relational.Build(config, log, ParseConfig, New)
}

// Close closes the connection.
func (d *Driver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := d.conn.Close(ctx)
	d.conn = nil
	if err != nil {
		return fmt.Errorf("close postgres destination connection: %w", err)
	}
	return nil
}

// Apply applies batches in one transaction: per table, COPY into a staging
// table, then (a) fill unchanged columns of moved rows, (b) truncate,
// (c) deletes and tombstones, (d) updates, (e) inserts, all sent in one
// round trip. Every write is guarded by the row's version, so applying a
// batch again, or an older batch after a newer one, changes nothing.
// Errors from data the destination rejects (SQLSTATE classes 22 and 23), and
// values a destination column of another type than the sent one would
// round or trim (checkExact), are sinkrunner.Permanent; everything else is
// transient.
func (d *Driver) Apply(ctx context.Context, batches []cdc.TableBatch) (err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	work := d.report.Begin(batches)
	if len(work) == 0 {
		return nil
	}
	defer func() {
		if err != nil {
			d.afterError(err)
			err = classify(err)
		}
	}()
	conn, err := d.connect(ctx)
	if err != nil {
		return err
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin transaction on postgres destination: %w", err)
	}
	defer func() {
		if err != nil {
			rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = tx.Rollback(rctx)
		}
	}()
	if err := lockTables(ctx, tx, d.cfg.Schema, work); err != nil {
		return err
	}

	var (
		queue pgx.Batch
		owner []string // table and step of each queued statement, for errors
		// partial are the tables whose batch left columns unchanged:
		// rows may be left with columns no change has provided yet.
		partial []reportPlan
		buf     bytes.Buffer
	)
	enqueue := func(table, step, sql string, args ...any) {
		queue.Queue(sql, args...)
		owner = append(owner, step+" of "+table)
	}
	for _, b := range work {
		table := d.cfg.Schema + "." + b.Table.Name
		// prepare returns the batch as the destination takes it: without
		// columns the source dropped (see Config.DroppedColumns).
		plan, b, err := d.prepare(ctx, tx, b)
		if err != nil {
			return fmt.Errorf("apply batch to %s: %w", table, err)
		}
		if plan == nil {
			// A truncate of a table that was never created here:
			// nothing to remove.
			continue
		}
		// (a) Before anything is deleted: a row whose key changed takes
		// the columns the change left unchanged from the row stored at
		// its old key, when that is newer than what the batch carries.
		if b, err = fillMoved(ctx, tx, plan, b); err != nil {
			return fmt.Errorf("apply batch to %s: %w", table, err)
		}
		var hasFloor, hasUpsert bool
		for _, r := range b.Rows {
			if r.Delete || r.Floor != nil {
				hasFloor = true
			}
			if !r.Delete {
				hasUpsert = true
			}
		}
		if len(b.Rows) > 0 {
			buf.Reset()
			encodeRows(&buf, plan.cols, b.Rows)
			if _, err := tx.Conn().PgConn().CopyFrom(ctx, &buf, plan.sql.copy); err != nil {
				return fmt.Errorf("apply batch to %s: copy %d rows to staging%s: %w", table, len(b.Rows), copyWhere(err), err)
			}
			if err := checkExact(ctx, tx, b, plan); err != nil {
				return fmt.Errorf("apply batch to %s: %w", table, err)
			}
		}
		if t := b.Truncate; t != nil {
			// (b) Only rows older than the truncate go: a truncate
			// redelivered after newer rows were applied must not
			// remove them, and columns of newer rows that an older
			// change filled become unknown. The watermark keeps
			// older changes from filling or inserting anything later
			// (steps d, e), and tombstones older than it are covered
			// by it.
			lsn, seq := int64(t.LSN), t.Seq
			enqueue(table, "truncate", plan.sql.TruncateRows, lsn, seq)
			if plan.truncateInvalidate != "" {
				enqueue(table, "invalidate columns before truncate", plan.truncateInvalidate, lsn, seq)
			}
			enqueue(table, "record truncate", plan.sql.TruncateMark, lsn, seq, d.cfg.Schema, b.Table.Name)
			if plan.hasTomb {
				enqueue(table, "drop tombstones before truncate", plan.sql.TruncateTombs, lsn, seq)
			}
		}
		if hasFloor {
			// (c) A delete (or the delete before a re-created row)
			// only removes an older row (an older delete redelivered
			// must not remove a row inserted after it), turns columns
			// of a newer row older than itself into unknown, and
			// leaves a tombstone while the key has no row or one with
			// unknown columns, so that an older change arriving later
			// neither resurrects the row nor fills it.
			enqueue(table, "delete", plan.sql.DeleteRows)
			if plan.sql.InvalidateRows != "" {
				enqueue(table, "invalidate columns before delete", plan.sql.InvalidateRows)
			}
			enqueue(table, "record tombstones", plan.sql.Tombstone, d.cfg.Schema, b.Table.Name)
		}
		if hasUpsert {
			// (d) A newer change overwrites the stored row, keeping
			// the columns it left unchanged; an older one fills only
			// the columns whose stored version is older than its own.
			if plan.colv.has {
				enqueue(table, "update", plan.sql.Update, d.cfg.Schema, b.Table.Name)
			} else {
				// No late fills without column versions, nor their
				// watermark parameters.
				enqueue(table, "update", plan.sql.Update)
			}
			// (e) A missing row is inserted unless a newer delete
			// (tombstone) or truncate of it was already applied.
			enqueue(table, "insert", plan.sql.Insert, d.cfg.Schema, b.Table.Name)
			// The row now carries a newer version than its old
			// tombstone and every column known: the row's own guard
			// takes over.
			enqueue(table, "drop superseded tombstones", plan.sql.Untomb)
		}
		// Moved rows are re-read from the source whatever they hold
		// (guard.MovedKeys).
		d.report.Moved(b)
		if plan.colv.has && slices.ContainsFunc(b.Rows, func(r cdc.RowChange) bool { return !r.Delete && len(r.Unchanged) > 0 }) {
			partial = append(partial, reportPlan{table: table, source: b.Table.String(), plan: plan})
		}
	}
	if queue.Len() > 0 {
		br := tx.SendBatch(ctx, &queue)
		for i := range owner {
			if _, err := br.Exec(); err != nil {
				br.Close()
				return fmt.Errorf("apply batch: %s: %w", owner[i], err)
			}
		}
		if err := br.Close(); err != nil {
			return fmt.Errorf("apply batch: %w", err)
		}
	}
	for _, p := range partial {
		if err := d.reportUnknown(ctx, tx, p); err != nil {
			return err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit batch to postgres destination: %w", err)
	}
	d.report.Committed()
	return nil
}

// connect returns the open connection, opening one if needed. A new
// connection has no staging tables yet.
func (d *Driver) connect(ctx context.Context) (*pgx.Conn, error) {
	if d.conn != nil && !d.conn.IsClosed() {
		return d.conn, nil
	}
	cc, err := d.cfg.connConfig()
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, d.cfg.connectError(err)
	}
	d.conn = conn
	d.stages = map[string]*stagePlan{}
	return conn, nil
}

// afterError forgets everything a failed transaction may have made stale:
// table shapes (the destination may have changed under us) and staging
// tables (their creation may have been rolled back). A connection that is
// not known to be healthy is closed and reopened on the next Apply.
func (d *Driver) afterError(err error) {
	d.tables = map[string]*tableShape{}
	d.stages = map[string]*stagePlan{}
	var pgErr *pgconn.PgError
	if d.conn != nil && (d.conn.IsClosed() || !errors.As(err, &pgErr)) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = d.conn.Close(ctx)
		d.conn = nil
	}
}

// prepare makes sure the destination table, its tombstone table and a
// staging table for the batch's shape exist, and returns the shape's SQL
// and the batch as it is to be applied: the newest change's columns decide
// the table's schema, so columns only older changes of the batch list
// (dropped at the source since) leave it, and destination columns the
// source dropped are dropped, or staged as NULL (Config.DroppedColumns).
// It returns nil for a batch that only truncates a table that does not
// exist.
func (d *Driver) prepare(ctx context.Context, tx pgx.Tx, b cdc.TableBatch) (*stagePlan, cdc.TableBatch, error) {
	if len(b.KeyColumns()) == 0 && len(b.Rows) > 0 {
		return nil, b, sinkrunner.Permanent(errors.New("the change events name no key columns; rows cannot be matched"))
	}
	for _, c := range b.Columns {
		if strings.HasPrefix(c.Name, relational.ReservedPrefix) {
			return nil, b, sinkrunner.Permanent(fmt.Errorf("column %q uses the prefix %s Rosetta reserves", c.Name, relational.ReservedPrefix))
		}
	}
	// Rows of changes older than a rename hold the renamed column under
	// its old name: they follow it to the new one before the old name
	// leaves the batch.
	b = b.FollowRenames()
	b = b.Without(b.Dropped)
	shape, err := d.shape(ctx, tx, b)
	if err != nil || shape == nil {
		return nil, b, err
	}
	if widened, err := widenColumns(ctx, tx, shape.Target, shape.Types, b.Columns); err != nil {
		return nil, b, err
	} else if len(widened) > 0 {
		d.log.Info("widened destination columns to the source's types", "table", d.cfg.Schema+"."+b.Table.Name, "ddl", widened)
		if shape.Types, err = loadColumns(ctx, tx, shape.Target); err != nil {
			return nil, b, err
		}
	}
	var nulls []string // dropped source columns kept: every row written sets them NULL
	if gone := colmark.Dropped(shape.Source, b.Columns); len(gone) > 0 && len(b.Columns) > 0 {
		if d.cfg.DroppedColumns == DroppedDrop {
			ddl, err := dropColumns(ctx, tx, shape.Target, gone)
			if err != nil {
				return nil, b, err
			}
			d.log.Info("dropped destination columns the source dropped", "table", d.cfg.Schema+"."+b.Table.Name, "ddl", ddl)
			for _, n := range gone {
				delete(shape.Types, n)
				delete(shape.Source, n)
			}
		} else {
			nulls = gone
		}
	}
	cols := make([]stageColumn, len(b.Columns), len(b.Columns)+len(nulls))
	var sig strings.Builder
	sig.WriteString(shape.Target)
	for i, c := range b.Columns {
		cols[i] = stageColumn{Name: c.Name, Type: shape.Types[c.Name], Key: c.Key}
		if sent := columnType(c.BaseType); needsCheck(cols[i].Type, sent) {
			cols[i].Check = sent
		}
		sig.WriteString("\x00" + c.Name + "\x01" + cols[i].Type + "\x01" + strconv.FormatBool(c.Key) + "\x01" + cols[i].Check)
	}
	for _, n := range nulls {
		// No row of the batch has a value for it: staged as NULL.
		cols = append(cols, stageColumn{Name: n, Type: shape.Types[n]})
		sig.WriteString("\x00" + n + "\x01" + shape.Types[n] + "\x01null")
	}
	// The signature is complete before the lookup: a key that gained a
	// part after it would never hit, and every batch would create one
	// more temporary table, each truncated at every commit of the session
	// (ON COMMIT DELETE ROWS), so that the apply slows as it runs.
	x := colvSQL{has: shape.Has(relational.ColvCol)}
	sig.WriteString("\x00colv=" + strconv.FormatBool(x.has))
	if plan, ok := d.stages[sig.String()]; ok {
		return withTruncate(plan, shape, b), b, nil
	}
	d.nextID++
	stage := "_rosetta_stage_" + strconv.Itoa(d.nextID)
	plan := &stagePlan{cols: cols, sql: buildStatements(shape.Target, shape.Tomb, stage, cols, x), hasTomb: shape.HasTomb, target: shape.Target,
		stage: stage, colv: x}
	if len(b.Rows) == 0 {
		// Truncate only: no staging needed; not cached, as the batch
		// may lack the columns a staging table needs.
		return withTruncate(plan, shape, b), b, nil
	}
	if _, err := tx.Exec(ctx, plan.sql.createStage); err != nil {
		return nil, b, fmt.Errorf("create staging table: %w", err)
	}
	d.stages[sig.String()] = plan
	return withTruncate(plan, shape, b), b, nil
}

// classify marks errors the same batch will always hit as permanent: data
// the destination rejects (sinkrunner.PermanentSQLState).
func classify(err error) error {
	if err == nil || sinkrunner.IsPermanent(err) {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && sinkrunner.PermanentSQLState(pgErr.Code) {
		return sinkrunner.Permanent(err)
	}
	return err
}
