package duckdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/colmark"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/guard"
	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/relational"
)

var _ sinkrunner.Driver = (*Driver)(nil)

// Driver applies batches to one DuckDB file over one connection. The file
// is opened by Apply and released (checkpointed and closed) when idle, see
// the package comment. Safe for use by one runner; Apply calls are
// serialized.
type Driver struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	closed bool
	// report gathers the rows the Apply in progress leaves with unknown
	// columns, for Incomplete once it committed.
	report   relational.Report
	db       *sql.DB
	conn     *sql.Conn
	openedAt time.Time
	// noReopenUntil keeps the file free for readers after a MaxHold
	// release.
	noReopenUntil time.Time
	// idle releases the file after ReleaseAfter without a batch; idleGen
	// tells a timer that fired late that it was superseded.
	idle    *time.Timer
	idleGen uint64

	// Caches of the open connection; dropped when it closes or an Apply
	// fails.
	tables map[string]*tableShape // by destination table name
	stages map[string]*stagePlan  // by shape signature; temp tables of conn
	nextID int
}

// stagePlan is a staging table on the current connection, the SQL that
// applies it to its destination table, and the appender's column types.
type stagePlan struct {
	layout  stageLayout
	sql     statements
	hasTomb bool
	target  string
	stage   string
	// truncateInvalidate turns columns older than a truncate ($1, $2)
	// into unknown in every newer row; set for batches that truncate,
	// from the destination table's columns.
	truncateInvalidate string
	wireTypes          []duckdb.TypeInfo
	wireNames          []string
}

// New returns a driver for cfg. It does no I/O: the file is opened, and its
// directory created, by the first Apply.
func New(cfg Config, log *slog.Logger) *Driver {
	return &Driver{cfg: cfg, log: log.With("destination_type", "duckdb", "path", cfg.Path)}
}

// Factory builds a driver from a destination's JSON config
// (configstore.Destination.ConfigWithSecrets). It does not open the file.
func Factory(_ context.Context, config json.RawMessage, log *slog.Logger) (sinkrunner.Driver, error) {
	return relational.Build(config, log, ParseConfig, New)
}

// Close checkpoints and closes the file if it is open. Apply fails after it.
func (d *Driver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	d.stopIdle()
	return d.release()
}

// Apply applies batches in one DuckDB transaction: per table, append the
// rows into a staging table, then (a) fill kept columns of moved rows,
// (b) truncate, (c) deletes and tombstones, (d) updates, (e) inserts. Every
// write is guarded by the row's version, so applying a batch again, or an
// older batch after a newer one, changes nothing. Values the destination
// cannot hold exactly, and data DuckDB rejects (conversion, range,
// constraint errors) are sinkrunner.Permanent; everything else, such as
// another process holding the file, is transient.
func (d *Driver) Apply(ctx context.Context, batches []cdc.TableBatch) (err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errors.New("apply to duckdb destination: driver is closed")
	}
	work := d.report.Begin(batches)
	if len(work) == 0 {
		return nil
	}
	d.stopIdle()
	defer func() {
		if err != nil {
			// Forget everything the failed transaction may have made
			// stale and let readers in; the retry reopens the file.
			if rerr := d.release(); rerr != nil {
				d.log.Warn("release duckdb file after a failed batch", "error", rerr)
			}
			err = classify(err)
			return
		}
		d.report.Committed()
		d.afterCommit()
	}()
	conn, err := d.open(ctx)
	if err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
		return fmt.Errorf("begin transaction on duckdb destination: %w", err)
	}
	defer func() {
		if err != nil {
			rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, _ = conn.ExecContext(rctx, "ROLLBACK")
		}
	}()
	for _, b := range work {
		if err := d.applyTable(ctx, conn, b); err != nil {
			return fmt.Errorf("apply batch to %s.%s: %w", d.cfg.Schema, b.Table.Name, err)
		}
	}
	// The runner acks the batch once this returns nil: DuckDB has
	// written and synced its WAL by the time COMMIT returns.
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("commit batch to duckdb destination: %w", err)
	}
	return nil
}

// applyTable stages one table's rows and runs the version-guarded
// statements, in the transaction open on conn.
func (d *Driver) applyTable(ctx context.Context, conn *sql.Conn, b cdc.TableBatch) error {
	// prepare returns the batch as the destination takes it: without
	// columns the source dropped (see Config.DroppedColumns).
	plan, b, fills, err := d.prepare(ctx, conn, b)
	if err != nil {
		return err
	}
	if plan == nil {
		// A truncate of a table that was never created here: nothing
		// to remove.
		return nil
	}
	exec := func(step, query string, args ...any) error {
		if _, err := conn.ExecContext(ctx, query, args...); err != nil {
			return fmt.Errorf("%s: %w", step, err)
		}
		return nil
	}
	var hasFloor, hasUpsert bool
	var extra []extraFill
	if len(b.Rows) > 0 {
		rows, ex, err := stageRows(b, plan.layout, fills)
		if err != nil {
			return err
		}
		extra = ex
		for _, r := range b.Rows {
			hasFloor = hasFloor || r.Delete || r.Floor != nil
			hasUpsert = hasUpsert || !r.Delete
		}
		if err := exec("clear staging table", plan.sql.clearStage); err != nil {
			return err
		}
		if err := appendRows(ctx, conn, plan, rows); err != nil {
			return fmt.Errorf("stage %d rows: %w", len(rows), err)
		}
	}
	// (a) Before anything is deleted: a row whose key changed takes the
	// columns the change left unchanged from the row stored at its old
	// key, where guard.FillSources found them newer than the batch's.
	if fills != nil && plan.sql.fill != "" {
		if err := exec("fill moved rows", plan.sql.fill); err != nil {
			return err
		}
	}
	for _, f := range extra {
		q, args, err := extraFillSQL(plan, f)
		if err != nil {
			return err
		}
		if err := exec("fill moved rows from a second old key", q, args...); err != nil {
			return err
		}
	}
	if t := b.Truncate; t != nil {
		// (b) Only rows older than the truncate go: a truncate
		// redelivered after newer rows were applied must not remove
		// them. The watermark keeps rows older than the truncate from
		// being inserted again later (step e), and tombstones older than
		// it are covered by it.
		lsn, seq := int64(t.LSN), t.Seq
		if err := exec("truncate", plan.sql.TruncateRows, lsn, seq); err != nil {
			return err
		}
		if plan.truncateInvalidate != "" {
			if err := exec("invalidate columns before truncate", plan.truncateInvalidate, lsn, seq); err != nil {
				return err
			}
		}
		if err := exec("record truncate", plan.sql.TruncateMark, lsn, seq, d.cfg.Schema, b.Table.Name); err != nil {
			return err
		}
		if plan.hasTomb {
			if err := exec("drop tombstones before truncate", plan.sql.TruncateTombs, lsn, seq); err != nil {
				return err
			}
		}
	}
	if hasFloor {
		// (c) A delete (or the delete before a re-created row) only
		// removes an older row (an older delete redelivered must not
		// remove a row inserted after it), turns columns of a newer row
		// older than itself into unknown, and leaves a tombstone while
		// the key has no row or one with unknown columns, so that an
		// older change arriving later neither resurrects nor fills it.
		if err := exec("delete", plan.sql.DeleteRows); err != nil {
			return err
		}
		if plan.sql.InvalidateRows != "" {
			if err := exec("invalidate columns before delete", plan.sql.InvalidateRows); err != nil {
				return err
			}
		}
		if err := exec("update tombstones", plan.sql.TombUpdate, d.cfg.Schema, b.Table.Name); err != nil {
			return err
		}
		if err := exec("record tombstones", plan.sql.TombInsert, d.cfg.Schema, b.Table.Name); err != nil {
			return err
		}
	}
	if hasUpsert {
		// (d) A newer change overwrites the stored row, keeping the
		// columns it left unchanged; an older one fills only the
		// columns whose stored version is older than its own.
		if err := exec("update", plan.sql.Update, d.cfg.Schema, b.Table.Name); err != nil {
			return err
		}
		// (e) A missing row is inserted unless a newer delete
		// (tombstone) or truncate of it was already applied.
		if err := exec("insert", plan.sql.Insert, d.cfg.Schema, b.Table.Name); err != nil {
			return err
		}
		// The row now carries a newer version than its old tombstone
		// and every column known: the row's own guard takes over.
		if err := exec("drop superseded tombstones", plan.sql.Untomb); err != nil {
			return err
		}
		// Moved rows are re-read from the source whatever they hold
		// (guard.MovedKeys).
		d.report.Moved(b)
		if slices.ContainsFunc(b.Rows, func(r cdc.RowChange) bool { return !r.Delete && len(r.Unchanged) > 0 }) {
			return d.reportUnknown(ctx, conn, plan, b)
		}
	}
	return nil
}

// prepare makes sure the destination table, its tombstone table and a
// staging table for the batch's shape exist, and returns the shape's SQL.
// It also returns the batch as it is to be applied: the newest change's
// columns decide the table's schema, so columns only older changes of the
// batch list (dropped at the source since) leave it, and destination
// columns the source dropped are dropped, or staged as NULL
// (Config.DroppedColumns). It returns nil for a batch that only truncates
// a table that does not exist.
func (d *Driver) prepare(ctx context.Context, conn *sql.Conn, b cdc.TableBatch) (*stagePlan, cdc.TableBatch, []map[string][]cdc.Value, error) {
	if len(b.KeyColumns()) == 0 && len(b.Rows) > 0 {
		return nil, b, nil, sinkrunner.Permanent(errors.New("the change events name no key columns; rows cannot be matched"))
	}
	seen := map[string]string{}
	for _, c := range b.Columns {
		if strings.HasPrefix(strings.ToLower(c.Name), relational.ReservedPrefix) {
			return nil, b, nil, sinkrunner.Permanent(fmt.Errorf("column %q uses the prefix %s Rosetta reserves", c.Name, relational.ReservedPrefix))
		}
		// DuckDB matches identifiers case-insensitively, even quoted.
		if other, ok := seen[strings.ToLower(c.Name)]; ok {
			return nil, b, nil, sinkrunner.Permanent(fmt.Errorf("columns %q and %q are one column in DuckDB, whose identifiers are case-insensitive", other, c.Name))
		}
		seen[strings.ToLower(c.Name)] = c.Name
	}
	// Rows of changes older than a rename hold the renamed column under
	// its old name: they follow it to the new one before the old name
	// leaves the batch.
	b = b.FollowRenames()
	b = b.Without(b.Dropped)
	shape, err := d.shape(ctx, conn, b)
	if err != nil || shape == nil {
		return nil, b, nil, err
	}
	if widened, err := widenColumns(ctx, conn, shape.Target, shape.Types, b.Columns); err != nil {
		return nil, b, nil, err
	} else if len(widened) > 0 {
		d.log.Info("widened destination columns to the source's types", "table", d.cfg.Schema+"."+b.Table.Name, "ddl", widened)
		if shape.Types, err = d.loadColumns(ctx, conn, b.Table.Name); err != nil {
			return nil, b, nil, err
		}
	}
	var nulls []string // dropped source columns kept: every row written sets them NULL
	if gone := colmark.Dropped(shape.Source, b.Columns); len(gone) > 0 && len(b.Columns) > 0 {
		if d.cfg.DroppedColumns == DroppedDrop {
			ddl, err := dropColumns(ctx, conn, shape.Target, gone)
			if err != nil {
				return nil, b, nil, err
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
	// Columns moved rows take from their old keys' stored rows.
	fills, err := d.fillSources(ctx, conn, shape, b)
	if err != nil {
		return nil, b, nil, err
	}
	keep := map[string]bool{}
	for _, f := range fills {
		for name := range f {
			keep[name] = true
		}
	}
	b = guard.Filled(b, fills, func(int, string, []cdc.Value) cdc.Value { return cdc.Value{Null: true} })
	cols := make([]stageColumn, len(b.Columns))
	var sig strings.Builder
	sig.WriteString(shape.Target)
	for i, c := range b.Columns {
		typ := shape.Types[c.Name]
		conv, err := converterFor(typ)
		if err != nil {
			return nil, b, nil, sinkrunner.Permanent(fmt.Errorf("column %s: %w", c.Name, err))
		}
		cols[i] = stageColumn{Name: c.Name, Type: typ, Key: c.Key, Keep: keep[c.Name] && !c.Key, conv: conv}
		sig.WriteString("\x00" + c.Name + "\x01" + typ + "\x01" + strconv.FormatBool(c.Key) + strconv.FormatBool(cols[i].Keep))
	}
	for _, n := range nulls {
		// No row of the batch has a value for it: staged as NULL.
		conv, err := converterFor(shape.Types[n])
		if err != nil {
			return nil, b, nil, sinkrunner.Permanent(fmt.Errorf("column %s: %w", n, err))
		}
		cols = append(cols, stageColumn{Name: n, Type: shape.Types[n], conv: conv})
		sig.WriteString("\x00" + n + "\x01" + shape.Types[n] + "\x01null")
	}
	if plan, ok := d.stages[sig.String()]; ok {
		return withTruncate(plan, shape, b), b, fills, nil
	}
	d.nextID++
	layout := newLayout(cols)
	plan := &stagePlan{
		layout:  layout,
		sql:     buildStatements(shape.Target, shape.Tomb, "_rosetta_stage_"+strconv.Itoa(d.nextID), layout),
		stage:   "_rosetta_stage_" + strconv.Itoa(d.nextID),
		hasTomb: shape.HasTomb,
		target:  shape.Target,
	}
	if len(b.Rows) == 0 {
		// Truncate only: no staging needed; not cached, as the batch
		// may lack the columns a staging table needs.
		return withTruncate(plan, shape, b), b, fills, nil
	}
	if plan.wireTypes, plan.wireNames, err = wireColumns(layout); err != nil {
		return nil, b, nil, err
	}
	if _, err := conn.ExecContext(ctx, plan.sql.createStage); err != nil {
		return nil, b, nil, fmt.Errorf("create staging table: %w", err)
	}
	d.stages[sig.String()] = plan
	return withTruncate(plan, shape, b), b, fills, nil
}

// wireColumns lists the appender's column types and names in layout order.
func wireColumns(l stageLayout) ([]duckdb.TypeInfo, []string, error) {
	var types []duckdb.Type
	for _, c := range l.cols {
		types = append(types, c.conv.wire)
	}
	types = append(types, wireBool, wireBigint, wireBigint, wireBool, duckdb.TYPE_VARCHAR, wireBigint, wireBigint)
	for _, k := range l.keys {
		types = append(types, l.cols[k].conv.wire)
	}
	for range l.keeps {
		types = append(types, wireBool)
	}
	infos := make([]duckdb.TypeInfo, len(types))
	names := make([]string, len(types))
	for i, t := range types {
		info, err := duckdb.NewTypeInfo(t)
		if err != nil {
			return nil, nil, fmt.Errorf("appender column type %s: %w", wireName(t), err)
		}
		infos[i], names[i] = info, loadColPrefix+strconv.Itoa(i+1)
	}
	return infos, names, nil
}

// classify marks errors the same batch will always hit as permanent: data
// DuckDB rejects (conversion, out of range, constraint violations). Lock
// and other IO errors, interrupts, transaction conflicts, catalog errors
// (a table changed behind the driver's back; the retry reloads it) and the
// rest are transient and retried.
func classify(err error) error {
	if err == nil || sinkrunner.IsPermanent(err) {
		return err
	}
	var de *duckdb.Error
	if errors.As(err, &de) {
		switch de.Type {
		case duckdb.ErrorTypeConversion, duckdb.ErrorTypeOutOfRange, duckdb.ErrorTypeConstraint:
			return sinkrunner.Permanent(err)
		}
	}
	return err
}

// appendRows loads rows into the plan's staging table through DuckDB's
// query appender: the rows travel as data chunks of their wire types and
// one INSERT … SELECT casts them into the staging table, inside the
// transaction open on conn. (Measured against a multi-row prepared INSERT
// in BenchmarkStage: see docs/duckdb.md.)
func appendRows(ctx context.Context, conn *sql.Conn, plan *stagePlan, rows [][]driver.Value) error {
	return conn.Raw(func(dc any) error {
		c, ok := dc.(driver.Conn)
		if !ok {
			return fmt.Errorf("duckdb connection is a %T, not a driver.Conn", dc)
		}
		a, err := duckdb.NewQueryAppender(c, plan.sql.load, loadAlias, plan.wireTypes, plan.wireNames)
		if err != nil {
			return fmt.Errorf("create appender: %w", err)
		}
		for i, r := range rows {
			if err := a.AppendRow(r...); err != nil {
				_ = a.Close()
				return fmt.Errorf("append row %d: %w", i, err)
			}
		}
		if err := a.CloseWithCancel(ctx); err != nil {
			return fmt.Errorf("flush appender: %w", err)
		}
		return nil
	})
}
