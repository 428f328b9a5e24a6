package snowflake

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
	sf "github.com/snowflakedb/gosnowflake"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/colmark"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/relational"
)

var _ sinkrunner.Driver = (*Driver)(nil)

// Driver applies batches to one Snowflake destination over one session,
// opened on first use and reopened after a failure. Safe for use by one
// runner; Apply calls are serialized.
type Driver struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	db       *sql.DB
	conn     *sql.Conn // pinned: temporary tables and transactions are per session
	tables   map[string]*tableState
	stages   map[string]string // staging table per target and shape, in this session
	registry bool              // _ROSETTA_TABLES exists, with the collect floor
	// collectChunk is the most tombstones one DELETE of CollectTombstones
	// removes; 0 means defaultCollectChunk (tests lower it).
	collectChunk int
	// report gathers, during an Apply, the rows its batches left with
	// unknown columns, for Incomplete once it committed.
	report relational.Report
}

// tableState is what the driver knows of a destination table. It is a
// cache: any failed Apply drops it, and a batch with a column it does not
// list reloads it from Snowflake.
type tableState struct {
	exists     bool
	types      map[string]colType // Snowflake column name -> type
	foreign    map[string]string  // columns of types Rosetta cannot load -> type name
	hasTomb    bool
	hasDeleted bool              // the _ROSETTA_DELETED column exists
	comments   map[string]string // column -> comment ("" none)
	source     map[string]bool   // columns carrying a colmark (markSourceColumns)
}

// New returns a driver for cfg (from ParseConfig); it logs in on the first
// Apply, so a destination that is unreachable shows up as a retried Apply
// error.
func New(cfg Config, log *slog.Logger) *Driver {
	return &Driver{cfg: cfg, log: log, tables: map[string]*tableState{}, stages: map[string]string{}}
}

// Factory builds a driver from a destination's JSON config
// (configstore.Destination.ConfigWithSecrets). It reads and decrypts the
// private key, so a wrong passphrase is reported at once, but does not
// connect.
func Factory(_ context.Context, config json.RawMessage, log *slog.Logger) (sinkrunner.Driver, error) {
	return relational.Build(config, log, ParseConfig, New)
}

// ConfigError is a problem with the destination's configuration that
// retrying will not fix until an operator acts: a key Snowflake rejects, an
// unreadable key file. Its message says what to change.
//
// It is deliberately not sinkrunner.Permanent: the runner dead-letters the
// changes of a batch that fails permanently, and a wrong key would send
// every change there. Returned as a plain error, it is retried with the
// runner's backoff (at most one login attempt per MaxBackoff) and shown as
// the destination's health, and changes wait in JetStream until the key is
// fixed; the same driver then logs in without a restart.
type ConfigError struct {
	Err error
}

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// BatchPolicy is the destination's flush interval and batch size
// (Config.FlushInterval, Config.BatchSize), which the sink uses instead
// of its own for this destination's runner.
func (d *Driver) BatchPolicy() (size int, wait time.Duration) {
	return d.cfg.BatchSize, d.cfg.FlushInterval
}

// Close ends the Snowflake session.
func (d *Driver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.disconnect()
}

func (d *Driver) disconnect() error {
	var errs []error
	if d.conn != nil {
		errs = append(errs, d.conn.Close())
	}
	if d.db != nil {
		errs = append(errs, d.db.Close())
	}
	d.conn, d.db = nil, nil
	d.stages = map[string]string{}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close snowflake session: %w", err)
	}
	return nil
}

// job is one table's part of a batch.
type job struct {
	b     cdc.TableBatch
	table string // Snowflake table name
	o     objects
	st    *tableState
	shape shape
	opt   mergeOptions
	dir   string // stage directory holding the batch's file; "" without rows
	// fills holds, per row, the columns to take from the row stored at an
	// old key (guard.FillSources); extra those from a second old key.
	fills []map[string][]cdc.Value
	extra []extraFill
	// names are the table's data columns; guarded: the batch has floors
	// or partial rows, so the tombstones follow the rows' completeness.
	names   []string
	guarded bool
}

// Apply applies batches in one Snowflake transaction. Before it, outside
// the transaction because DDL commits in Snowflake: create or extend the
// destination tables, (re)create the session's staging tables, and PUT one
// gzip CSV file per table. In it: read the truncate watermarks; per table,
// apply a truncate, clear and COPY the staging table, then one MERGE into
// the target and, with hard deletes, one MERGE into the tombstones. Every write is guarded by the
// row's version, so applying a batch again, or an older batch after a newer
// one, changes nothing. docs/snowflake.md lists the statements.
//
// Values Snowflake cannot hold exactly (*RowError) and data Snowflake
// rejects (the error numbers of errorRules) are sinkrunner.Permanent; a
// rejected login is a *ConfigError (see there); everything else is
// transient, and a lost session is replaced by the next Apply.
func (d *Driver) Apply(ctx context.Context, batches []cdc.TableBatch) (err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	work := d.report.Begin(batches)
	if len(work) == 0 {
		return nil
	}
	var jobs []*job
	defer func() {
		if err != nil {
			err = classify(err)
			d.afterError(ctx, err, jobs)
		}
	}()
	conn, err := d.connect(ctx)
	if err != nil {
		return err
	}
	if err := d.ensureRegistry(ctx, conn); err != nil {
		return err
	}
	for _, b := range work {
		j, err := d.prepare(ctx, conn, b)
		if err != nil {
			return fmt.Errorf("apply batch to %s: %w", b.Table, err)
		}
		jobs = append(jobs, j)
		if len(b.Rows) == 0 {
			continue
		}
		dir := randomHex(8) // a directory of its own: see copySQL
		if err := d.stageFile(ctx, conn, j, dir); err != nil {
			return fmt.Errorf("apply batch to %s: %w", b.Table, err)
		}
		j.dir = dir
	}

	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin snowflake transaction: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback() // after a failed statement Snowflake keeps the others: undo them
		}
	}()
	marks, err := readWatermarks(ctx, tx, qualified(d.cfg.database, d.cfg.schema, registryTable))
	if err != nil {
		return err
	}
	for _, j := range jobs {
		if err := d.applyTable(ctx, tx, j, marks[j.table]); err != nil {
			return fmt.Errorf("apply batch to %s: %w", j.b.Table, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit batch to snowflake: %w", err)
	}
	d.report.Committed()
	return nil
}

// applyTable runs one table's statements inside the transaction, in the
// order of the version guard's specification (guard.Table.Apply). bounds
// are the table's truncate watermark before this batch and its collect
// floor.
func (d *Driver) applyTable(ctx context.Context, tx *sql.Tx, j *job, bounds guardBounds) error {
	if len(j.b.Rows) > 0 {
		// The staging table still holds the last committed batch's rows.
		if _, err := tx.ExecContext(ctx, clearStageSQL(j.o.stage)); err != nil {
			return fmt.Errorf("clear staging table: %w", err)
		}
		if err := copyInto(ctx, tx, copySQL(j.o, j.shape, j.dir), len(j.b.Rows)); err != nil {
			return err
		}
		// Before anything is deleted: moved rows take the columns their
		// key change left unchanged from the row stored at the old key.
		if err := d.fillStage(ctx, tx, j); err != nil {
			return err
		}
	}
	if t := j.b.Truncate; t != nil {
		lsn, err := bindLSN(t.LSN)
		if err != nil {
			return err
		}
		if j.st.exists {
			// Only rows older than the truncate go: a truncate redelivered
			// after newer rows were applied must not remove them.
			q, args := truncateRowsSQL(j.o.target, d.cfg.SoftDelete), []any{lsn, lsn, t.Seq}
			if d.cfg.SoftDelete {
				args = []any{lsn, t.Seq, lsn, lsn, t.Seq}
			}
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return fmt.Errorf("truncate: %w", err)
			}
			// Newer rows lose the columns a change from before the
			// truncate filled.
			if len(j.names) > 0 {
				if _, err := tx.ExecContext(ctx, truncateInvalidateSQL(j.o.target, j.names), lsn, t.Seq, lsn, lsn, t.Seq); err != nil {
					return fmt.Errorf("invalidate columns before truncate: %w", err)
				}
			}
			if j.st.hasTomb {
				if _, err := tx.ExecContext(ctx, truncateTombsSQL(j.o.tomb), lsn, lsn, t.Seq); err != nil {
					return fmt.Errorf("drop tombstones before truncate: %w", err)
				}
			}
		}
		// The watermark keeps rows older than the truncate from being
		// inserted later, even into a table that does not exist yet.
		if _, err := tx.ExecContext(ctx, markTruncateSQL(j.o.registry), j.table, lsn, t.Seq); err != nil {
			return fmt.Errorf("record truncate: %w", err)
		}
		if bounds.truncate.Less(*t) {
			bounds.truncate = *t
		}
	}
	if len(j.b.Rows) == 0 {
		return nil
	}
	// Inserts and late fills must be newer than the truncate and not
	// older than the collect floor (collect.go).
	mark := bounds.exclusive()
	markLSN, err := bindLSN(mark.LSN)
	if err != nil {
		return err
	}
	marks := []any{markLSN, markLSN, mark.Seq, markLSN, markLSN, mark.Seq}
	if !d.cfg.SoftDelete {
		marks = append(marks, markLSN, markLSN, mark.Seq)
	}
	if _, err := tx.ExecContext(ctx, mergeSQL(j.o, j.shape, j.opt), marks...); err != nil {
		return fmt.Errorf("merge %d rows: %w", len(j.b.Rows), err)
	}
	switch {
	case d.cfg.SoftDelete:
	case j.guarded:
		if _, err := tx.ExecContext(ctx, tombGuardSQL(j.o, j.shape, j.names), marks[:6]...); err != nil {
			return fmt.Errorf("record tombstones: %w", err)
		}
	default:
		if _, err := tx.ExecContext(ctx, tombSQL(j.o, j.shape)); err != nil {
			return fmt.Errorf("record tombstones: %w", err)
		}
	}
	return d.findUnknown(ctx, tx, j)
}

// copyInto runs COPY and checks it loaded every row: a file COPY skipped
// (or lost) must fail the batch, never let it be acked unapplied.
func copyInto(ctx context.Context, tx *sql.Tx, q string, want int) error {
	rows, err := tx.QueryContext(ctx, q)
	if err != nil {
		return fmt.Errorf("copy into staging table: %w", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return fmt.Errorf("copy into staging table: %w", err)
	}
	loaded, at := int64(0), -1
	for i, c := range cols {
		if strings.EqualFold(c, "rows_loaded") {
			at = i
		}
	}
	for rows.Next() {
		vals, err := scanText(rows, len(cols))
		if err != nil {
			return fmt.Errorf("read copy result: %w", err)
		}
		if at >= 0 {
			n, _ := strconv.ParseInt(vals[at].String, 10, 64)
			loaded += n
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("copy into staging table: %w", err)
	}
	if loaded != int64(want) {
		return fmt.Errorf("copy into staging table loaded %d rows, want %d", loaded, want)
	}
	return nil
}

// scanText reads the current row of rows, of n columns, as nullable text.
func scanText(rows *sql.Rows, n int) ([]sql.NullString, error) {
	vals := make([]sql.NullString, n)
	ptrs := make([]any, n)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	return vals, rows.Scan(ptrs...)
}

// readWatermarks reads every table's truncate watermark and collect floor.
func readWatermarks(ctx context.Context, tx *sql.Tx, registry string) (map[string]guardBounds, error) {
	rows, err := tx.QueryContext(ctx, readRegistrySQL(registry))
	if err != nil {
		return nil, fmt.Errorf("read truncate watermarks: %w", err)
	}
	defer rows.Close()
	marks := map[string]guardBounds{}
	for rows.Next() {
		var name, lsn, seq, clsn, cseq string
		if err := rows.Scan(&name, &lsn, &seq, &clsn, &cseq); err != nil {
			return nil, fmt.Errorf("read truncate watermarks: %w", err)
		}
		mark, err1 := parseVersion(lsn, seq)
		floor, err2 := parseVersion(clsn, cseq)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("read truncate watermark of %s: %w", name, err)
		}
		b := marks[name]
		if b.truncate.Less(mark) {
			b.truncate = mark
		}
		if b.collect.Less(floor) {
			b.collect = floor
		}
		marks[name] = b
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read truncate watermarks: %w", err)
	}
	return marks, nil
}

// bindLSN passes an LSN as a bind: gosnowflake binds signed integers, and
// no PostgreSQL LSN reaches 2^63.
func bindLSN(lsn uint64) (int64, error) {
	if lsn > math.MaxInt64 {
		return 0, sinkrunner.Permanent(fmt.Errorf("lsn %s is beyond 2^63", contracts.FormatLSN(lsn)))
	}
	return int64(lsn), nil
}

// stageFile writes the job's rows to a local gzip CSV file and PUTs it to
// the staging table's stage, in the job's directory. The file is local only
// for the PUT: gosnowflake 1.19's upload from an in-memory stream
// (WithFileStream) measures the stream after draining it and uploads
// nothing.
func (d *Driver) stageFile(ctx context.Context, conn *sql.Conn, j *job, dir string) error {
	f, err := os.CreateTemp("", "rosetta-snowflake-*.csv.gz")
	if err != nil {
		return fmt.Errorf("create staging file: %w", err)
	}
	defer os.Remove(f.Name())
	j.extra, err = encodeFile(f, j.b.Table, j.shape, j.b.Rows, j.fills)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("write staging file: %w", cerr)
	}
	if err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, putSQL(j.o, f.Name(), dir)); err != nil {
		return fmt.Errorf("put %d rows to stage: %w", len(j.b.Rows), err)
	}
	return nil
}

// encodeFile writes the gzip CSV staging file of one table's rows: gzip at
// BestSpeed, with klauspost/compress's implementation of it (faster, smaller
// and leaner than the standard library's; BenchmarkStageFile and
// docs/snowflake.md have the numbers).
func encodeFile(w io.Writer, table contracts.Table, s shape, rows []cdc.RowChange, fills []map[string][]cdc.Value) ([]extraFill, error) {
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return nil, fmt.Errorf("gzip staging file: %w", err)
	}
	extra, err := writeStageCSV(zw, table, s, rows, fills)
	if err != nil {
		var re *RowError
		if errors.As(err, &re) {
			return nil, sinkrunner.PermanentClass(re.Class(), err)
		}
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("gzip staging file: %w", err)
	}
	return extra, nil
}

// afterError forgets what a failed Apply may have made stale (table shapes)
// and removes files it staged. A session not known to be healthy is closed
// and opened again by the next Apply (its staging tables go with it).
func (d *Driver) afterError(ctx context.Context, err error, jobs []*job) {
	d.tables = map[string]*tableState{}
	d.registry = false
	if d.conn == nil {
		return
	}
	var se *sf.SnowflakeError
	// A cancelled statement or transaction may leave the connection closed
	// by database/sql; errors other than Snowflake's own are network-level;
	// a lost session (expired token, session gone) must be replaced, its
	// staging tables with it.
	if ctx.Err() != nil || !sinkrunner.IsPermanent(err) && !errors.As(err, &se) || sessionLost(err) {
		if cerr := d.disconnect(); cerr != nil {
			d.log.Warn("close snowflake session after error", "error", cerr)
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, j := range jobs {
		if j.dir == "" {
			continue
		}
		if _, rerr := d.conn.ExecContext(ctx, removeSQL(j.o, j.dir)); rerr != nil {
			d.log.Warn("remove staged file after error", "table", j.b.Table.String(), "error", rerr)
		}
	}
}

// prepare maps a batch's columns, makes sure the destination table (and its
// tombstone table) has them and that the session has a staging table for
// the batch's shape. The newest change's columns decide the table's
// schema: columns only older changes of the batch list (dropped at the
// source since) leave the batch, and destination columns the source
// dropped are dropped, or staged as NULL (Config.DroppedColumns).
func (d *Driver) prepare(ctx context.Context, conn *sql.Conn, b cdc.TableBatch) (*job, error) {
	if err := checkSourceName("table", b.Table.Name); err != nil {
		return nil, sinkrunner.Permanent(err)
	}
	// Rows of changes older than a rename hold the renamed column under
	// its old name: they follow it to the new one before the old name
	// leaves the batch.
	b = b.FollowRenames()
	b = b.Without(b.Dropped)
	j := &job{b: b, table: destName(b.Table.Name)}
	cols, err := mapColumns(b)
	if err != nil {
		return nil, sinkrunner.Permanent(err)
	}
	j.st, err = d.ensureTable(ctx, conn, j.table, cols, existingValues(b))
	if err != nil {
		return nil, err
	}
	var nulls []string // dropped source columns kept: every row written sets them NULL
	if gone := colmark.Dropped(j.st.source, destColumns(cols)); len(gone) > 0 && len(cols) > 0 {
		if d.cfg.DroppedColumns == DroppedDrop {
			ddl, err := dropColumns(ctx, conn, qualified(d.cfg.database, d.cfg.schema, j.table), j.st, gone)
			if err != nil {
				return nil, err
			}
			d.log.Info("dropped destination columns the source dropped", "table", j.table, "ddl", ddl)
		} else {
			for _, n := range gone {
				if _, ok := j.st.types[n]; ok {
					nulls = append(nulls, n)
				}
			}
		}
	}
	// Columns take the destination's actual types: a table created by an
	// earlier version of the source schema keeps its types, and values are
	// checked against them.
	for i := range cols {
		c := &cols[i]
		if name, ok := j.st.foreign[c.name]; ok && len(b.Rows) > 0 {
			return nil, sinkrunner.Permanent(fmt.Errorf("column %s is of Snowflake type %s, which Rosetta cannot load", c.name, name))
		}
		c.typ = j.st.types[c.name]
		if c.key {
			j.shape.keys = append(j.shape.keys, i)
		}
	}
	j.shape.nullableKeys = keysNullable(cols)
	for _, n := range nulls {
		// No row of the batch has a value for it (source ""): staged NULL.
		cols = append(cols, stageColumn{name: n, typ: j.st.types[n]})
	}
	j.shape.cols = cols
	if len(b.Rows) > 0 && len(j.shape.keys) == 0 {
		return nil, sinkrunner.Permanent(errors.New("the change events name no key columns; rows cannot be matched"))
	}
	if err := d.guardShape(ctx, conn, j); err != nil {
		return nil, err
	}
	stageKey := j.table + "\x00" + j.shape.signature()
	stageName, ok := d.stages[stageKey]
	if !ok {
		stageName = stagePrefix + shortHash(stageKey)
	}
	j.o = newObjects(d.cfg.database, d.cfg.schema, j.table, stageName)
	if !ok && len(b.Rows) > 0 {
		if _, err := conn.ExecContext(ctx, createStageSQL(j.o.stage, j.shape)); err != nil {
			return nil, fmt.Errorf("create staging table: %w", err)
		}
		d.stages[stageKey] = stageName
	}
	return j, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}
