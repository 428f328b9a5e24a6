package main

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
)

// snapshotResult is the initial snapshot of one table: Rosetta into each
// destination against the plain pipe between the same two databases.
type snapshotResult struct {
	Rows int64 `json:"rows"`
	// CopyPipe is COPY (SELECT …) TO STDOUT piped into COPY … FROM STDIN
	// (binary) from the source database to another of the same server.
	CopyPipe *measure `json:"copy_pipe_postgres"`
	// AppenderPipe is the table's rows read with one query and appended
	// with DuckDB's appender into a fresh file.
	AppenderPipe *measure `json:"appender_pipe_duckdb"`
	Postgres     *measure `json:"rosetta_snapshot_postgres,omitempty"`
	DuckDB       *measure `json:"rosetta_snapshot_duckdb,omitempty"`
}

const snapTable = "bench_snap"

// runSnapshot writes a table of rows rows and measures the ceilings and
// rosetta dev's initial snapshot of it into PostgreSQL and DuckDB.
func (b *bench) runSnapshot(ctx context.Context, conn *pgx.Conn, rows int64) (*snapshotResult, error) {
	res := &snapshotResult{Rows: rows}
	tbl := pgx.Identifier{snapTable}.Sanitize()
	if _, err := conn.Exec(ctx, fmt.Sprintf(tableDDL, tbl)); err != nil {
		return res, err
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf(`INSERT INTO %s SELECT g, 1, (g %% 97)::int + 1, g*1000+1, (g %% 10000)/100.0 + 1/7.0,
		'order ' || g || ' v1 shipped to warehouse north-east', '2026-01-01'::timestamptz + g * interval '1 ms',
		('{"sku": "SKU-' || (g %% 1000) || '", "qty": 1, "tags": ["a", "b"], "gift": false}')::jsonb
		FROM generate_series(1, %d) g`, tbl, rows)); err != nil {
		return res, fmt.Errorf("snapshot table: %w", err)
	}
	if _, err := conn.Exec(ctx, "VACUUM ANALYZE "+tbl); err != nil {
		return res, err
	}
	if _, err := conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+pubName); err != nil {
		return res, err
	}
	if _, err := conn.Exec(ctx, "CREATE PUBLICATION "+pubName+" FOR TABLE "+tbl); err != nil {
		return res, err
	}
	m, err := b.copyPipe(ctx, rows)
	if err != nil {
		return res, fmt.Errorf("copy pipe: %w", err)
	}
	res.CopyPipe = ptr(m)
	logf("snapshot: COPY pipe %.0f rows/s", m.PerSecond)
	if m, err = b.appenderPipe(ctx, conn, rows); err != nil {
		return res, fmt.Errorf("appender pipe: %w", err)
	}
	res.AppenderPipe = ptr(m)
	logf("snapshot: DuckDB appender pipe %.0f rows/s", m.PerSecond)
	for _, dest := range []string{"postgres", "duckdb"} {
		m, err := b.rosettaSnapshot(ctx, dest, rows)
		if err != nil {
			return res, fmt.Errorf("rosetta snapshot into %s: %w", dest, err)
		}
		if dest == "postgres" {
			res.Postgres = ptr(m)
		} else {
			res.DuckDB = ptr(m)
		}
		logf("snapshot: rosetta into %s %.0f rows/s, peak RSS %.0f MB", dest, m.PerSecond, m.PeakRSSMB)
	}
	return res, nil
}

func (b *bench) copyPipe(ctx context.Context, rows int64) (measure, error) {
	const db = "snapceil"
	b.pg.dropDB(ctx, db)
	if err := b.pg.createDB(ctx, db); err != nil {
		return measure{}, err
	}
	defer b.pg.dropDB(context.Background(), db)
	src, err := b.pg.connect(ctx, "src")
	if err != nil {
		return measure{}, err
	}
	defer src.Close(context.Background())
	dst, err := b.pg.connect(ctx, db)
	if err != nil {
		return measure{}, err
	}
	defer dst.Close(context.Background())
	tbl := pgx.Identifier{snapTable}.Sanitize()
	if _, err := dst.Exec(ctx, fmt.Sprintf(tableDDL, tbl)); err != nil {
		return measure{}, err
	}
	start := time.Now()
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		_, err := src.PgConn().CopyTo(ctx, pw, "COPY (SELECT * FROM "+tbl+") TO STDOUT (FORMAT binary)")
		pw.CloseWithError(err)
		errc <- err
	}()
	tag, err := dst.PgConn().CopyFrom(ctx, pr, "COPY "+tbl+" FROM STDIN (FORMAT binary)")
	if err != nil {
		pr.CloseWithError(err)
		<-errc
		return measure{}, err
	}
	if err := <-errc; err != nil {
		return measure{}, err
	}
	if tag.RowsAffected() != rows {
		return measure{}, fmt.Errorf("copied %d rows, want %d", tag.RowsAffected(), rows)
	}
	m := newMeasure(rows, time.Since(start))
	m.Note = "COPY (SELECT *) TO STDOUT binary piped into COPY FROM STDIN between two databases of the server"
	return m, nil
}

func (b *bench) appenderPipe(ctx context.Context, conn *pgx.Conn, rows int64) (measure, error) {
	dir := filepath.Join(b.root, "appender")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return measure{}, err
	}
	defer os.RemoveAll(dir)
	connector, err := duckdb.NewConnector(filepath.Join(dir, "ceil.duckdb"), nil)
	if err != nil {
		return measure{}, err
	}
	defer connector.Close()
	db := sql.OpenDB(connector)
	defer db.Close()
	if _, err := db.ExecContext(ctx, `CREATE TABLE bench_snap (id BIGINT PRIMARY KEY, ver INTEGER, qty INTEGER, amount BIGINT,
		price DOUBLE, note VARCHAR, ts TIMESTAMPTZ, attrs JSON)`); err != nil {
		return measure{}, err
	}
	dc, err := connector.Connect(ctx)
	if err != nil {
		return measure{}, err
	}
	defer dc.Close()
	app, err := duckdb.NewAppenderFromConn(dc, "", "bench_snap")
	if err != nil {
		return measure{}, err
	}
	start := time.Now()
	rs, err := conn.Query(ctx, "SELECT id, ver, qty, amount, price, note, ts, attrs::text FROM "+pgx.Identifier{snapTable}.Sanitize())
	if err != nil {
		app.Close()
		return measure{}, err
	}
	var n int64
	var (
		id, amount int64
		ver, qty   int32
		price      float64
		note, js   string
		ts         time.Time
	)
	for rs.Next() {
		if err := rs.Scan(&id, &ver, &qty, &amount, &price, &note, &ts, &js); err != nil {
			rs.Close()
			app.Close()
			return measure{}, err
		}
		if err := app.AppendRow([]driver.Value{id, ver, qty, amount, price, note, ts, js}...); err != nil {
			rs.Close()
			app.Close()
			return measure{}, err
		}
		n++
	}
	rs.Close()
	if err := rs.Err(); err != nil {
		app.Close()
		return measure{}, err
	}
	if err := app.Close(); err != nil {
		return measure{}, fmt.Errorf("flush appender: %w", err)
	}
	if n != rows {
		return measure{}, fmt.Errorf("appended %d rows, want %d", n, rows)
	}
	m := newMeasure(rows, time.Since(start))
	m.Note = "SELECT of the source table appended row by row with DuckDB's appender into a fresh file (this process)"
	return m, nil
}

// rosettaSnapshot runs rosetta dev with the table's initial snapshot queued
// and measures from the process start to every row in the destination.
func (b *bench) rosettaSnapshot(ctx context.Context, dest string, rows int64) (measure, error) {
	r := b.newRun(snapTable+"_"+dest, "dev", dest, snapTable+"_"+dest+"_slot", snapTable)
	r.snapshot = true
	if err := r.configure(ctx); err != nil {
		return measure{}, err
	}
	defer func() {
		c := context.Background()
		b.pg.dropDB(c, r.dstDB)
		_ = b.pg.exec(c, "src", "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", r.slot)
		os.RemoveAll(r.dir)
	}()
	if err := r.start(""); err != nil {
		return measure{}, err
	}
	defer r.stop()
	var dconn *pgx.Conn
	if dest == "postgres" {
		var err error
		if dconn, err = b.pg.connect(ctx, r.dstDB); err != nil {
			return measure{}, err
		}
		defer dconn.Close(context.Background())
	}
	cfg, err := b.pg.connect(ctx, r.cfgDB)
	if err != nil {
		return measure{}, err
	}
	defer cfg.Close(context.Background())
	var js jetstream.JetStream
	closeNC := func() {}
	defer func() { closeNC() }()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	err = waitFor(wctx, 50*time.Millisecond, func() (bool, error) {
		if r.exited() {
			return false, fmt.Errorf("rosetta dev exited: %v\n%s", r.waitErr, r.logTail())
		}
		if dest == "postgres" {
			var n int64
			err := dconn.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{"public", snapTable}.Sanitize()).Scan(&n)
			if err != nil && !tableMissing(err) {
				return false, err
			}
			return n >= rows, nil
		}
		// DuckDB: the process holds the file; done when the job has
		// published every row and the consumer has none left unapplied.
		var status string
		if err := cfg.QueryRow(ctx, "SELECT status FROM backfill_jobs ORDER BY id LIMIT 1").Scan(&status); err != nil {
			return false, err
		}
		if status == "FAILED" || status == "CANCELLED" {
			return false, fmt.Errorf("snapshot job %s", status)
		}
		if status != "COMPLETED" {
			return false, nil
		}
		if js == nil {
			var err error
			if js, closeNC, err = connectNATS(ctx, r.natsAddr, r.dataDir); err != nil {
				return false, err
			}
		}
		return consumerDrained(ctx, js, r.srcID)
	})
	if err != nil {
		return measure{}, err
	}
	m := newMeasure(rows, time.Since(r.started))
	m.Note = "from process start (migrations, connecting, the snapshot job's lease) to every row in the destination"
	ru := r.stop()
	m.setUsage(ru, r.peakKB)
	if dest == "duckdb" {
		out, err := exec.Command(b.duckqueryBin, "-api", "", "-nats", "", "-wait", "60s", r.duckPath,
			"SELECT CAST(count(*) AS VARCHAR) FROM "+snapTable).CombinedOutput()
		if err != nil {
			return m, fmt.Errorf("duckquery: %v: %s", err, out)
		}
		if !strings.Contains(string(out), strconv.FormatInt(rows, 10)) {
			return m, fmt.Errorf("duckdb destination has %q rows, want %d", strings.TrimSpace(string(out)), rows)
		}
	}
	return m, nil
}
