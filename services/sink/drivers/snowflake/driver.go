package snowflake

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"database/sql"
	"encoding/base64"
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
	registry bool              // _ROSETTA_TABLES exists
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
	cfg, err := ParseConfig(config)
	if err != nil {
		return nil, err
	}
	return New(cfg, log), nil
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
	var work []cdc.TableBatch
	for _, b := range batches {
		if len(b.Rows) > 0 || b.Truncate != nil {
			work = append(work, b)
		}
	}
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
	if !d.registry {
		if _, err := conn.ExecContext(ctx, createRegistrySQL(qualified(d.cfg.database, d.cfg.schema, registryTable))); err != nil {
			return fmt.Errorf("create %s: %w", registryTable, err)
		}
		d.registry = true
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
	return nil
}

// applyTable runs one table's statements inside the transaction. mark is the
// table's truncate watermark before this batch.
func (d *Driver) applyTable(ctx context.Context, tx *sql.Tx, j *job, mark contracts.Version) error {
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
		if mark.Less(*t) {
			mark = *t
		}
	}
	if len(j.b.Rows) == 0 {
		return nil
	}
	// The staging table still holds the last committed batch's rows.
	if _, err := tx.ExecContext(ctx, clearStageSQL(j.o.stage)); err != nil {
		return fmt.Errorf("clear staging table: %w", err)
	}
	if err := copyInto(ctx, tx, copySQL(j.o, j.shape, j.dir), len(j.b.Rows)); err != nil {
		return err
	}
	markLSN, err := bindLSN(mark.LSN)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, mergeSQL(j.o, j.shape, j.opt), markLSN, markLSN, mark.Seq); err != nil {
		return fmt.Errorf("merge %d rows: %w", len(j.b.Rows), err)
	}
	if !d.cfg.SoftDelete {
		if _, err := tx.ExecContext(ctx, tombSQL(j.o, j.shape)); err != nil {
			return fmt.Errorf("record tombstones: %w", err)
		}
	}
	return nil
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
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
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

// readWatermarks reads every table's truncate watermark.
func readWatermarks(ctx context.Context, tx *sql.Tx, registry string) (map[string]contracts.Version, error) {
	rows, err := tx.QueryContext(ctx, readRegistrySQL(registry))
	if err != nil {
		return nil, fmt.Errorf("read truncate watermarks: %w", err)
	}
	defer rows.Close()
	marks := map[string]contracts.Version{}
	for rows.Next() {
		var name, lsn, seq string
		if err := rows.Scan(&name, &lsn, &seq); err != nil {
			return nil, fmt.Errorf("read truncate watermarks: %w", err)
		}
		l, err1 := strconv.ParseUint(lsn, 10, 64)
		s, err2 := strconv.ParseInt(seq, 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("read truncate watermark of %s: %w", name, err)
		}
		if v := (contracts.Version{LSN: l, Seq: s}); marks[name].Less(v) {
			marks[name] = v
		}
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
	err = encodeFile(f, j.b.Table, j.shape, j.b.Rows)
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
func encodeFile(w io.Writer, table cdc.TableRef, s shape, rows []cdc.RowChange) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return fmt.Errorf("gzip staging file: %w", err)
	}
	if err := writeStageCSV(zw, table, s, rows); err != nil {
		var re *RowError
		if errors.As(err, &re) {
			return sinkrunner.PermanentClass(re.Class(), err)
		}
		return err
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("gzip staging file: %w", err)
	}
	return nil
}

// connect returns the session, logging in if needed. A new session has no
// staging tables yet.
func (d *Driver) connect(ctx context.Context) (*sql.Conn, error) {
	if d.conn != nil {
		return d.conn, nil
	}
	key, err := d.cfg.privateKey()
	if err != nil {
		return nil, &ConfigError{Err: fmt.Errorf("snowflake destination: %w", err)}
	}
	db := sql.OpenDB(sf.NewConnector(sf.SnowflakeDriver{}, *d.cfg.driverConfig(key)))
	lctx := ctx
	if d.cfg.LoginTimeout > 0 {
		var cancel context.CancelFunc
		lctx, cancel = context.WithTimeout(ctx, d.cfg.LoginTimeout)
		defer cancel()
	}
	conn, err := db.Conn(lctx)
	if err != nil {
		_ = db.Close()
		return nil, loginError(d.cfg, err, key)
	}
	d.db, d.conn = db, conn
	d.stages = map[string]string{}
	d.log.Info("logged in to snowflake", "account", d.cfg.Account, "user", d.cfg.User)
	return conn, nil
}

// loginError explains a rejected key-pair login; other failures (network,
// timeouts) stay transient.
func loginError(cfg Config, err error, key *rsa.PrivateKey) error {
	if objectMissing(err) {
		return &ConfigError{Err: fmt.Errorf(
			"snowflake account %s accepted the login of user %s but refused its database, schema or warehouse: %w; "+
				"check that database %s, schema %s and the warehouse exist and that the role can use them",
			cfg.Account, cfg.User, err, ident(cfg.database), ident(cfg.schema))}
	}
	if loginRejected(err) {
		return &ConfigError{Err: fmt.Errorf(
			"snowflake rejected the key-pair login of user %s on account %s: %w; check account, user and role, and that the "+
				"public key of the configured private key (fingerprint %s) is registered on the user: "+
				"ALTER USER … SET RSA_PUBLIC_KEY = '…' (DESC USER shows RSA_PUBLIC_KEY_FP)",
			cfg.User, cfg.Account, err, keyFingerprint(key))}
	}
	return fmt.Errorf("log in to snowflake account %s as %s: %w", cfg.Account, cfg.User, err)
}

// loginRejected reports whether Snowflake answered a login with one of the
// codes that mean the account, user, role or key is wrong (as opposed to a
// network failure or timeout).
func loginRejected(err error) bool {
	var se *sf.SnowflakeError
	if !errors.As(err, &se) {
		return false
	}
	switch se.Number {
	case 390100, 390101, 390144, 390189:
		return true
	}
	return false
}

// objectMissing reports whether a login failed with 390201: the database,
// schema or warehouse it names does not exist or the role may not use it
// (gosnowflake asks Snowflake to check them at login).
func objectMissing(err error) bool {
	var se *sf.SnowflakeError
	return errors.As(err, &se) && se.Number == 390201
}

// keyFingerprint is Snowflake's RSA_PUBLIC_KEY_FP of the key's public half.
func keyFingerprint(key *rsa.PrivateKey) string {
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return "unknown"
	}
	sum := sha256.Sum256(der)
	return "SHA256:" + base64.StdEncoding.EncodeToString(sum[:])
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
	if err := checkSourceName("table", b.Table.Table); err != nil {
		return nil, sinkrunner.Permanent(err)
	}
	// Rows of changes older than a rename hold the renamed column under
	// its old name: they follow it to the new one before the old name
	// leaves the batch.
	b = b.FollowRenames()
	b = b.Without(b.Dropped)
	j := &job{b: b, table: destName(b.Table.Table)}
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
	j.opt = mergeOptions{soft: d.cfg.SoftDelete, clearDeleted: !d.cfg.SoftDelete && j.st.hasDeleted}
	for _, r := range b.Rows {
		if !r.Delete && r.FallbackKey != nil && len(r.Unchanged) > 0 {
			j.opt.fallback = true
		}
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

// mapColumns gives each column of the batch its Snowflake name and the type
// a new column gets, rejecting reserved names and names that collide once
// mapped.
func mapColumns(b cdc.TableBatch) ([]stageColumn, error) {
	cols := make([]stageColumn, 0, len(b.Columns))
	seen := map[string]string{}
	for _, c := range b.Columns {
		if err := checkSourceName("column", c.Name); err != nil {
			return nil, err
		}
		name := destName(c.Name)
		if other, dup := seen[name]; dup {
			return nil, fmt.Errorf("columns %q and %q both map to the Snowflake column %s", other, c.Name, ident(name))
		}
		seen[name] = c.Name
		base := c.BaseType
		if base == "" {
			base = c.Type
		}
		cols = append(cols, stageColumn{source: c.Name, name: name, base: base, typ: mapType(base), key: c.Key, attnum: c.Attnum})
	}
	return cols, nil
}

// ensureTable returns the destination table's state, creating the table,
// adding missing columns and creating its tombstone table when the cache
// does not already show everything the batch needs. DDL is idempotent (IF
// NOT EXISTS), so sinks of several pipelines sharing a destination may run
// it concurrently. A batch without columns (a lone truncate) of a table
// that does not exist gets a state with exists false.
func (d *Driver) ensureTable(ctx context.Context, conn *sql.Conn, table string, cols []stageColumn, existing map[string]string) (*tableState, error) {
	if st, ok := d.tables[table]; ok && st.covers(cols, d.cfg.SoftDelete) && len(st.widenings(cols)) == 0 {
		return st, nil
	}
	target := qualified(d.cfg.database, d.cfg.schema, table)
	st, err := d.loadTable(ctx, conn, target, table)
	if err != nil {
		return nil, err
	}
	reload := false
	var ddl []string
	switch {
	case !st.exists && len(cols) == 0:
		return st, nil
	case !st.exists:
		ddl = append(ddl, createTableSQL(target, cols, d.cfg.SoftDelete))
		d.log.Info("creating destination table", "table", table)
	default:
		renamed, err := d.renameColumns(ctx, conn, target, st, cols)
		if len(renamed) > 0 {
			reload = true
			d.log.Info("renamed destination columns the source renamed", "table", table, "ddl", renamed)
		}
		if err != nil {
			return nil, err
		}
		for _, c := range cols {
			if _, ok := st.types[c.name]; !ok {
				if _, foreign := st.foreign[c.name]; !foreign {
					add, filled, err := addColumnDDL(target, table, c, existing)
					if err != nil {
						return nil, err
					}
					ddl = append(ddl, add...)
					_, hasValue := existing[c.name]
					d.log.Info("adding column to destination table", "table", table, "column", c.name, "existing_rows_value", filled)
					if hasValue && !filled {
						d.log.Warn("rows already in the destination table keep NULL in the added column: a "+c.typ.sql()+
							" column cannot take the value they hold at the source as its default; backfill the table to send them",
							"table", table, "column", c.name)
					}
				}
			}
		}
		bookkeeping := []string{lsnCol, seqCol}
		if d.cfg.SoftDelete {
			bookkeeping = append(bookkeeping, deletedCol)
		}
		for _, name := range bookkeeping {
			if _, ok := st.types[name]; !ok {
				ddl = append(ddl, addBookkeepingColumnSQL(target, name))
			}
		}
		if items := st.widenings(cols); len(items) > 0 {
			// One statement for every widened column of the table.
			ddl = append(ddl, alterColumnsSQL(target, items))
			d.log.Info("widening destination columns to the source's types", "table", table, "columns", items)
		}
	}
	for _, q := range ddl {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return nil, fmt.Errorf("prepare destination table: %w", err)
		}
	}
	if len(ddl) > 0 || reload {
		if st, err = d.loadTable(ctx, conn, target, table); err != nil {
			return nil, err
		}
	}
	switch {
	case !st.exists:
		// Snowflake answers "does not exist or not authorized" alike.
		return nil, fmt.Errorf("destination table %s is not visible to the role even after CREATE TABLE IF NOT EXISTS: "+
			"grant the role ownership of it, or SELECT, INSERT, UPDATE and DELETE", target)
	case !st.covers(cols, d.cfg.SoftDelete):
		return nil, fmt.Errorf("destination table %s lacks columns after adding them", target)
	}
	if err := d.markSourceColumns(ctx, conn, target, table, st, cols); err != nil {
		return nil, err
	}
	tomb := qualified(d.cfg.database, d.cfg.schema, tombPrefix+table)
	var keys []stageColumn
	for _, c := range cols {
		if c.key {
			c.typ = st.types[c.name]
			keys = append(keys, c)
		}
	}
	switch {
	case d.cfg.SoftDelete:
	case len(keys) > 0:
		if _, err := conn.ExecContext(ctx, createTombSQL(tomb, keys, keysNullable(cols))); err != nil {
			return nil, fmt.Errorf("create tombstone table: %w", err)
		}
		st.hasTomb = true
	default:
		// A lone truncate names no key: the tombstones exist only if an
		// earlier batch created them.
		t, err := describe(ctx, conn, tomb)
		if err != nil {
			return nil, err
		}
		st.hasTomb = t.exists
	}
	d.tables[table] = st
	return st, nil
}

// describe reads a table's columns from the metadata of an empty query.
func describe(ctx context.Context, conn *sql.Conn, name string) (*tableState, error) {
	st := &tableState{types: map[string]colType{}, foreign: map[string]string{}}
	rows, err := conn.QueryContext(ctx, "SELECT * FROM "+name+" LIMIT 0")
	if err != nil {
		var se *sf.SnowflakeError
		if errors.As(err, &se) && se.Number == 2003 { // does not exist or not authorized
			return st, nil
		}
		return nil, fmt.Errorf("read columns of %s: %w", name, err)
	}
	defer rows.Close()
	cts, err := rows.ColumnTypes()
	if err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", name, err)
	}
	st.exists = true
	for _, ct := range cts {
		p, s, _ := ct.DecimalSize()
		l, _ := ct.Length()
		t, ok := typeFromResult(ct.DatabaseTypeName(), p, s, l)
		if !ok {
			st.foreign[ct.Name()] = ct.DatabaseTypeName()
			continue
		}
		st.types[ct.Name()] = t
	}
	_, st.hasDeleted = st.types[deletedCol]
	return st, nil
}

func (s *tableState) covers(cols []stageColumn, soft bool) bool {
	if !s.exists {
		return len(cols) == 0
	}
	for _, c := range cols {
		_, ok := s.types[c.name]
		_, foreign := s.foreign[c.name]
		if !ok && !foreign {
			return false
		}
	}
	_, lsn := s.types[lsnCol]
	_, seq := s.types[seqCol]
	return lsn && seq && (!soft || s.hasDeleted)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}
