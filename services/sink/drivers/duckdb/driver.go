package duckdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/colmark"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/guard"
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
	// found gathers the rows the Apply in progress leaves with unknown
	// columns; incomplete holds them once it committed (Incomplete).
	found, incomplete []sinkrunner.IncompleteRows
	db                *sql.DB
	conn              *sql.Conn
	openedAt          time.Time
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

// tableShape is what the driver knows of a destination table: its columns
// and their types.
type tableShape struct {
	target  string            // quoted schema.table
	tomb    string            // quoted _rosetta.tomb_…
	hasTomb bool              // the tombstone table exists (the key is known)
	types   map[string]string // column -> DuckDB type
	source  map[string]bool   // columns marked as written from the source (markSourceColumns)
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
	cfg, err := ParseConfig(config)
	if err != nil {
		return nil, err
	}
	return New(cfg, log), nil
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
	d.found, d.incomplete = nil, nil
	var work []cdc.TableBatch
	for _, b := range batches {
		if len(b.Rows) > 0 || b.Truncate != nil {
			work = append(work, b)
		}
	}
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
		d.incomplete, d.found = d.found, nil
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
			return fmt.Errorf("apply batch to %s.%s: %w", d.cfg.Schema, b.Table.Table, err)
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
		if err := exec("truncate", plan.sql.truncateRows, lsn, seq); err != nil {
			return err
		}
		if plan.truncateInvalidate != "" {
			if err := exec("invalidate columns before truncate", plan.truncateInvalidate, lsn, seq); err != nil {
				return err
			}
		}
		if err := exec("record truncate", plan.sql.truncateMark, lsn, seq, d.cfg.Schema, b.Table.Table); err != nil {
			return err
		}
		if plan.hasTomb {
			if err := exec("drop tombstones before truncate", plan.sql.truncateTombs, lsn, seq); err != nil {
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
		if err := exec("delete", plan.sql.deleteRows); err != nil {
			return err
		}
		if plan.sql.invalidateRows != "" {
			if err := exec("invalidate columns before delete", plan.sql.invalidateRows); err != nil {
				return err
			}
		}
		if err := exec("update tombstones", plan.sql.tombUpdate, d.cfg.Schema, b.Table.Table); err != nil {
			return err
		}
		if err := exec("record tombstones", plan.sql.tombInsert, d.cfg.Schema, b.Table.Table); err != nil {
			return err
		}
	}
	if hasUpsert {
		// (d) A newer change overwrites the stored row, keeping the
		// columns it left unchanged; an older one fills only the
		// columns whose stored version is older than its own.
		if err := exec("update", plan.sql.update, d.cfg.Schema, b.Table.Table); err != nil {
			return err
		}
		// (e) A missing row is inserted unless a newer delete
		// (tombstone) or truncate of it was already applied.
		if err := exec("insert", plan.sql.insert, d.cfg.Schema, b.Table.Table); err != nil {
			return err
		}
		// The row now carries a newer version than its old tombstone
		// and every column known: the row's own guard takes over.
		if err := exec("drop superseded tombstones", plan.sql.untomb); err != nil {
			return err
		}
		// Moved rows are re-read from the source whatever they hold
		// (guard.MovedKeys).
		d.found = guard.ReportMoved(d.found, b)
		if slices.ContainsFunc(b.Rows, func(r cdc.RowChange) bool { return !r.Delete && len(r.Unchanged) > 0 }) {
			return d.reportUnknown(ctx, conn, plan, b)
		}
	}
	return nil
}

// open returns the open connection, opening the file if needed. Another
// process holding the file (a reader) makes opening retry for up to
// LockTimeout.
func (d *Driver) open(ctx context.Context) (*sql.Conn, error) {
	if d.conn != nil {
		return d.conn, nil
	}
	if wait := time.Until(d.noReopenUntil); wait > 0 {
		// Readers were promised this window after a MaxHold release.
		if err := sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("wait for readers of duckdb file %s: %w", d.cfg.Path, err)
		}
	}
	if dir := filepath.Dir(d.cfg.Path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create directory of duckdb file: %w", err)
		}
	}
	deadline := time.Now().Add(d.cfg.LockTimeout)
	backoff := 20 * time.Millisecond
	var connector *duckdb.Connector
	for {
		var err error
		connector, err = duckdb.NewConnector(d.cfg.Path, nil)
		if err == nil {
			break
		}
		// Another process holding the file is an IO error ("Could not
		// set lock on file … Conflicting lock is held in … (PID n)").
		var de *duckdb.Error
		if !errors.As(err, &de) || de.Type != duckdb.ErrorTypeIO || !time.Now().Add(backoff).Before(deadline) {
			return nil, fmt.Errorf("open duckdb file %s: %w", d.cfg.Path, err)
		}
		d.log.Debug("duckdb file is held by another process; retrying", "error", err, "retry_in", backoff)
		if err := sleep(ctx, backoff); err != nil {
			return nil, fmt.Errorf("open duckdb file %s: %w", d.cfg.Path, err)
		}
		backoff = min(2*backoff, time.Second)
	}
	db := sql.OpenDB(connector) // db.Close closes the connector
	conn, err := db.Conn(ctx)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("connect to duckdb file %s: %w", d.cfg.Path, err)
	}
	d.db, d.conn, d.openedAt = db, conn, time.Now()
	d.tables = map[string]*tableShape{}
	d.stages = map[string]*stagePlan{}
	return conn, nil
}

// afterCommit decides, after a committed batch, when the file is released.
func (d *Driver) afterCommit() {
	now := time.Now()
	switch {
	case d.cfg.ReleaseAfter == 0:
	case d.cfg.MaxHold > 0 && now.Sub(d.openedAt) >= d.cfg.MaxHold:
		d.noReopenUntil = now.Add(d.cfg.ReaderWindow)
	default:
		gen := d.idleGen
		d.idle = time.AfterFunc(d.cfg.ReleaseAfter, func() { d.releaseIdle(gen) })
		return
	}
	// The batch is committed; a failed release (the checkpoint) does not
	// undo it, and DuckDB replays its WAL on the next open.
	if err := d.release(); err != nil {
		d.log.Warn("release duckdb file", "error", err)
	}
}

// releaseIdle is the idle timer's callback.
func (d *Driver) releaseIdle(gen uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if gen != d.idleGen || d.conn == nil {
		return // an Apply or Close came first
	}
	d.idle = nil
	if err := d.release(); err != nil {
		d.log.Warn("release idle duckdb file", "error", err)
	}
}

func (d *Driver) stopIdle() {
	d.idleGen++
	if d.idle != nil {
		d.idle.Stop()
		d.idle = nil
	}
}

// release checkpoints the file (so that a read-only process sees every
// committed batch without a WAL to replay) and closes it.
func (d *Driver) release() error {
	d.tables, d.stages = nil, nil
	if d.conn == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	if _, err := d.conn.ExecContext(ctx, "CHECKPOINT"); err != nil {
		errs = append(errs, fmt.Errorf("checkpoint: %w", err))
	}
	if err := d.conn.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close connection: %w", err))
	}
	if err := d.db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close database: %w", err))
	}
	d.conn, d.db = nil, nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("release duckdb file %s: %w", d.cfg.Path, err)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
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
		if strings.HasPrefix(strings.ToLower(c.Name), reservedPrefix) {
			return nil, b, nil, sinkrunner.Permanent(fmt.Errorf("column %q uses the prefix %s Rosetta reserves", c.Name, reservedPrefix))
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
	if widened, err := widenColumns(ctx, conn, shape.target, shape.types, b.Columns); err != nil {
		return nil, b, nil, err
	} else if len(widened) > 0 {
		d.log.Info("widened destination columns to the source's types", "table", d.cfg.Schema+"."+b.Table.Table, "ddl", widened)
		if shape.types, err = d.loadColumns(ctx, conn, b.Table.Table); err != nil {
			return nil, b, nil, err
		}
	}
	var nulls []string // dropped source columns kept: every row written sets them NULL
	if gone := colmark.Dropped(shape.source, b.Columns); len(gone) > 0 && len(b.Columns) > 0 {
		if d.cfg.DroppedColumns == DroppedDrop {
			ddl, err := dropColumns(ctx, conn, shape.target, gone)
			if err != nil {
				return nil, b, nil, err
			}
			d.log.Info("dropped destination columns the source dropped", "table", d.cfg.Schema+"."+b.Table.Table, "ddl", ddl)
			for _, n := range gone {
				delete(shape.types, n)
				delete(shape.source, n)
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
	sig.WriteString(shape.target)
	for i, c := range b.Columns {
		typ := shape.types[c.Name]
		conv, err := converterFor(typ)
		if err != nil {
			return nil, b, nil, sinkrunner.Permanent(fmt.Errorf("column %s: %w", c.Name, err))
		}
		cols[i] = stageColumn{Name: c.Name, Type: typ, Key: c.Key, Keep: keep[c.Name] && !c.Key, conv: conv}
		sig.WriteString("\x00" + c.Name + "\x01" + typ + "\x01" + strconv.FormatBool(c.Key) + strconv.FormatBool(cols[i].Keep))
	}
	for _, n := range nulls {
		// No row of the batch has a value for it: staged as NULL.
		conv, err := converterFor(shape.types[n])
		if err != nil {
			return nil, b, nil, sinkrunner.Permanent(fmt.Errorf("column %s: %w", n, err))
		}
		cols = append(cols, stageColumn{Name: n, Type: shape.types[n], conv: conv})
		sig.WriteString("\x00" + n + "\x01" + shape.types[n] + "\x01null")
	}
	if plan, ok := d.stages[sig.String()]; ok {
		return withTruncate(plan, shape, b), b, fills, nil
	}
	d.nextID++
	layout := newLayout(cols)
	plan := &stagePlan{
		layout:  layout,
		sql:     buildStatements(shape.target, shape.tomb, "_rosetta_stage_"+strconv.Itoa(d.nextID), layout),
		stage:   "_rosetta_stage_" + strconv.Itoa(d.nextID),
		hasTomb: shape.hasTomb,
		target:  shape.target,
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

// shape returns the destination table's shape, creating the table, adding
// missing columns, and creating its bookkeeping when the cache does not
// already show everything the batch needs. It returns nil when the batch
// has no columns (a lone truncate) and the table does not exist.
func (d *Driver) shape(ctx context.Context, conn *sql.Conn, b cdc.TableBatch) (*tableShape, error) {
	if s, ok := d.tables[b.Table.Table]; ok && s.covers(b.Columns) {
		return s, nil
	}
	target := ident(d.cfg.Schema, b.Table.Table)
	tombName := tombstoneTableName(d.cfg.Schema, b.Table.Table)
	s := &tableShape{target: target, tomb: ident(bookkeepingSchema, tombName)}
	types, err := d.loadColumns(ctx, conn, b.Table.Table)
	if err != nil {
		return nil, err
	}
	keys := b.KeyColumns()
	var (
		ddl   []string
		fills []contracts.Column // added columns whose existing rows take a value
	)
	created := false
	switch {
	case len(types) == 0 && len(b.Columns) == 0:
		return nil, nil
	case len(types) == 0:
		cols := make([]stageColumn, len(b.Columns))
		for i, c := range b.Columns {
			cols[i] = stageColumn{Name: c.Name, Type: columnType(c.BaseType), Key: c.Key}
		}
		ddl = append(ddl, "CREATE SCHEMA IF NOT EXISTS "+ident(d.cfg.Schema), createTableSQL(target, cols))
		created = true
	default:
		renamed, err := d.renameColumns(ctx, conn, target, b.Table.Table, types, b.Columns)
		if err != nil {
			return nil, err
		}
		if len(renamed) > 0 {
			d.log.Info("renamed destination columns the source renamed", "table", d.cfg.Schema+"."+b.Table.Table, "ddl", renamed)
		}
		lower := map[string]string{}
		for name := range types {
			lower[strings.ToLower(name)] = name
		}
		for _, c := range b.Columns {
			if _, ok := types[c.Name]; ok {
				continue
			}
			if other, ok := lower[strings.ToLower(c.Name)]; ok {
				return nil, sinkrunner.Permanent(fmt.Errorf("column %q is column %q of the destination table: DuckDB identifiers are case-insensitive", c.Name, other))
			}
			ddl = append(ddl, addColumnSQL(target, stageColumn{Name: c.Name, Type: columnType(c.BaseType)}))
			if c.ExistingValue != "" {
				fills = append(fills, c)
			}
			d.log.Info("adding column to destination table", "table", d.cfg.Schema+"."+b.Table.Table, "column", c.Name,
				"existing_rows_value", c.ExistingValue != "")
		}
		for _, v := range []string{lsnCol, seqCol} {
			if _, ok := types[v]; !ok {
				ddl = append(ddl, addVersionSQL(target, v))
			}
		}
		if _, ok := types[colvCol]; !ok {
			// Tables created before column versions: every row's
			// columns have the row's version.
			ddl = append(ddl, "ALTER TABLE "+target+" ADD COLUMN IF NOT EXISTS "+ident(colvCol)+" "+colvType)
		}
		if len(keys) == 0 {
			// A lone truncate names no columns: the stored primary key
			// keys the tombstone table.
			if keys, err = d.loadPrimaryKey(ctx, conn, b.Table.Table); err != nil {
				return nil, err
			}
		}
	}
	ddl = append(ddl, bookkeepingDDL...)
	for _, q := range ddl {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return nil, fmt.Errorf("prepare destination table: %w", err)
		}
	}
	if s.types, err = d.loadColumns(ctx, conn, b.Table.Table); err != nil {
		return nil, err
	}
	if s.source, err = d.markSourceColumns(ctx, conn, target, b.Table.Table, b.Columns); err != nil {
		return nil, err
	}
	for _, c := range fills {
		if err := fillExisting(ctx, conn, target, d.cfg.Schema+"."+b.Table.Table, c, s.types[c.Name]); err != nil {
			return nil, err
		}
	}
	if created {
		d.log.Info("created destination table", "table", d.cfg.Schema+"."+b.Table.Table)
	}
	if len(keys) > 0 {
		keyCols := make([]stageColumn, len(keys))
		for i, k := range keys {
			keyCols[i] = stageColumn{Name: k, Type: s.types[k], Key: true}
		}
		if _, err := conn.ExecContext(ctx, createTombstoneSQL(s.tomb, keyCols)); err != nil {
			return nil, fmt.Errorf("create tombstone table: %w", err)
		}
		s.hasTomb = true
	}
	if _, err := conn.ExecContext(ctx, "INSERT INTO "+ident(bookkeepingSchema, registryTable)+
		" (schema_name, table_name, tombstone_table) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
		d.cfg.Schema, b.Table.Table, tombName); err != nil {
		return nil, fmt.Errorf("register destination table: %w", err)
	}
	if !s.covers(b.Columns) {
		return nil, fmt.Errorf("destination table %s lacks columns after adding them", target)
	}
	if s.hasTomb {
		d.tables[b.Table.Table] = s
	}
	return s, nil
}

// loadColumns reads a destination table's columns and types; none when it
// is missing. A table whose name differs from table only in case is the
// same table to DuckDB, and a permanent error.
func (d *Driver) loadColumns(ctx context.Context, conn *sql.Conn, table string) (map[string]string, error) {
	rows, err := conn.QueryContext(ctx, `SELECT table_name, column_name, data_type FROM duckdb_columns()
		WHERE database_name = current_database() AND lower(schema_name) = lower($1) AND lower(table_name) = lower($2)`,
		d.cfg.Schema, table)
	if err != nil {
		return nil, fmt.Errorf("read columns of %s.%s: %w", d.cfg.Schema, table, err)
	}
	defer rows.Close()
	types := map[string]string{}
	for rows.Next() {
		var stored, name, typ string
		if err := rows.Scan(&stored, &name, &typ); err != nil {
			return nil, fmt.Errorf("read columns of %s.%s: %w", d.cfg.Schema, table, err)
		}
		if stored != table {
			return nil, sinkrunner.Permanent(fmt.Errorf("table %q is table %q of the destination: DuckDB identifiers are case-insensitive", table, stored))
		}
		types[name] = typ
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read columns of %s.%s: %w", d.cfg.Schema, table, err)
	}
	return types, nil
}

// loadPrimaryKey reads a table's primary key columns in key order.
func (d *Driver) loadPrimaryKey(ctx context.Context, conn *sql.Conn, table string) ([]string, error) {
	rows, err := conn.QueryContext(ctx, `SELECT unnest(constraint_column_names) FROM duckdb_constraints()
		WHERE database_name = current_database() AND lower(schema_name) = lower($1) AND table_name = $2
		AND constraint_type = 'PRIMARY KEY'`, d.cfg.Schema, table)
	if err != nil {
		return nil, fmt.Errorf("read primary key of %s.%s: %w", d.cfg.Schema, table, err)
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("read primary key of %s.%s: %w", d.cfg.Schema, table, err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read primary key of %s.%s: %w", d.cfg.Schema, table, err)
	}
	return keys, nil
}

func (s *tableShape) covers(cols []contracts.Column) bool {
	for _, c := range cols {
		if _, ok := s.types[c.Name]; !ok {
			return false
		}
	}
	_, lsn := s.types[lsnCol]
	_, seq := s.types[seqCol]
	_, colv := s.types[colvCol]
	return lsn && seq && colv
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
