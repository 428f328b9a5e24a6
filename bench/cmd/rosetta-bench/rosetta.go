package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/secrets"
)

const secretKey = "rosetta-bench-secret-key-0123456789"

// benchAPIToken is the bootstrap admin token the bench starts Rosetta with.
const benchAPIToken = "rosetta-bench-api-token-0123456789abcdef"

// rosettaRun is one bin/rosetta process pointed at a slot copy, with its
// own config DB, data directory and destination.
type rosettaRun struct {
	b        *bench
	name     string // unique, used for DB and directory names
	command  string // dev, capture, sink
	dest     string // postgres, duckdb
	slot     string
	table    string
	dir      string
	cfgDB    string
	dstDB    string
	duckPath string
	natsAddr string
	// dataDir holds the embedded NATS's generated credentials.
	dataDir  string
	httpAddr string
	metrics  string
	srcID    int64

	cmd     *exec.Cmd
	hwm     func() int64 // stops the VmHWM sampler, returns the peak (kB)
	peakKB  int64
	started time.Time
	done    chan struct{}
	waitErr error
	// profiled is closed when the CPU profile is written (or given up).
	profiled chan struct{}
	profPath string
	// snapshot makes configure queue the table's initial snapshot job,
	// as the API does for a new pipeline.
	snapshot bool
	// natsURL, when set, is an external NATS (the scaling phase's
	// nats-server processes) instead of the process's embedded one.
	natsURL string
	// partitions is the source's partitions setting (0: the default, 1).
	partitions int
	// env is added to the process's environment.
	env []string
}

func (b *bench) newRun(name, command, dest, slot, table string) *rosettaRun {
	r := &rosettaRun{b: b, name: name, command: command, dest: dest, slot: slot, table: table,
		dir: filepath.Join(b.root, "runs", name), cfgDB: "cfg_" + name, dstDB: "dst_" + name}
	r.duckPath = filepath.Join(r.dir, "dest.duckdb")
	return r
}

// configure creates the run's config DB with one source (the slot copy,
// the bench publication), one destination and one started pipeline of the
// table, written straight to the config store: no snapshot job (as with
// `"snapshot": false` through the API) unless r.snapshot.
func (r *rosettaRun) configure(ctx context.Context) error {
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return err
	}
	if err := r.b.pg.createDB(ctx, r.cfgDB); err != nil {
		return err
	}
	if r.dest == "postgres" {
		if err := r.b.pg.createDB(ctx, r.dstDB); err != nil {
			return err
		}
	}
	box, err := secrets.NewBox(secretKey)
	if err != nil {
		return err
	}
	st, err := configstore.Open(ctx, r.b.pg.dsn(r.cfgDB), box)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return err
	}
	pw := "unused"
	in := configstore.SourceInput{Name: "bench", Host: "127.0.0.1", Port: r.b.pg.port,
		Database: "src", User: "postgres", Password: &pw, Publication: pubName, Slot: r.slot, SSLMode: "disable"}
	if r.partitions > 0 {
		in.Partitions = &r.partitions
	}
	src, err := st.CreateSource(ctx, in)
	if err != nil {
		return err
	}
	r.srcID = src.ID
	var dcfg map[string]any
	if r.dest == "postgres" {
		dcfg = map[string]any{"host": "127.0.0.1", "port": r.b.pg.port, "database": r.dstDB, "user": "postgres",
			"password": "unused", "schema": "public", "sslmode": "disable"}
	} else {
		dcfg = map[string]any{"path": r.duckPath}
	}
	dst, err := st.CreateDestination(ctx, configstore.DestinationInput{Name: "dest", Type: r.dest, Config: dcfg})
	if err != nil {
		return err
	}
	p, err := st.CreatePipeline(ctx, configstore.PipelineInput{Name: "bench", SourceID: src.ID,
		DestinationIDs: []int64{dst.ID}, Tables: []string{"public." + r.table}})
	if err != nil {
		return err
	}
	if r.snapshot {
		if _, err := st.CreateBackfillJob(ctx, configstore.BackfillInput{PipelineID: p.ID, Table: "public." + r.table,
			Kind: configstore.JobKindSnapshot}); err != nil {
			return err
		}
	}
	_, err = st.SetPipelineStatus(ctx, p.ID, configstore.StatusStart)
	return err
}

// start runs bin/rosetta <command>; a sink run reuses dataDir (the stream
// a capture run filled).
func (r *rosettaRun) start(dataDir string) error {
	httpPort, err := freePort()
	if err != nil {
		return err
	}
	r.httpAddr = "127.0.0.1:" + strconv.Itoa(httpPort)
	if r.natsAddr == "" {
		natsPort, err := freePort()
		if err != nil {
			return err
		}
		r.natsAddr = "127.0.0.1:" + strconv.Itoa(natsPort)
	}
	if dataDir == "" {
		dataDir = filepath.Join(r.dir, "data")
	}
	r.dataDir = dataDir
	logf, err := os.Create(filepath.Join(r.dir, r.command+".log"))
	if err != nil {
		return err
	}
	r.cmd = exec.Command(r.b.rosettaBin, r.command)
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	env := append(os.Environ(),
		"ROSETTA_CONFIG_DSN="+r.b.pg.dsn(r.cfgDB),
		"ROSETTA_HTTP_ADDR="+r.httpAddr,
		"ROSETTA_EMBEDDED_NATS_ADDR="+r.natsAddr,
		"ROSETTA_NATS_URL="+r.natsURL,
		"ROSETTA_DATA_DIR="+dataDir,
		"ROSETTA_SECRET_KEY="+secretKey,
		// The bench configures through the config DB, not the API; the
		// token only keeps `rosetta dev` from generating one.
		"ROSETTA_API_TOKEN="+benchAPIToken,
		"ROSETTA_STREAM_MAX_BYTES="+strconv.FormatInt(16<<30, 10),
		"ROSETTA_LOG_LEVEL=info",
		"ROSETTA_LOG_FORMAT=text",
	)
	if r.b.pprof {
		mp, err := freePort()
		if err != nil {
			return err
		}
		r.metrics = "127.0.0.1:" + strconv.Itoa(mp)
		env = append(env, "ROSETTA_METRICS_ADDR="+r.metrics, "ROSETTA_PPROF=1")
	}
	r.cmd.Env = append(env, r.env...)
	r.started = time.Now()
	if err := r.cmd.Start(); err != nil {
		return fmt.Errorf("start rosetta %s: %w", r.command, err)
	}
	r.hwm = sampleHWM(r.cmd.Process.Pid)
	r.done = make(chan struct{})
	go func() {
		r.waitErr = r.cmd.Wait()
		logf.Close()
		close(r.done)
	}()
	return nil
}

func (r *rosettaRun) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits for the process and returns its resource use
// (peak RSS, CPU time) over its whole life.
func (r *rosettaRun) stop() *syscall.Rusage {
	if r.cmd == nil || r.cmd.Process == nil {
		return nil
	}
	if r.hwm != nil {
		// Read before the process goes: /proc disappears with it.
		r.peakKB = r.hwm()
		r.hwm = nil
	}
	if !r.exited() {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.done:
		case <-time.After(60 * time.Second):
			_ = r.cmd.Process.Kill()
			<-r.done
		}
	}
	if ru, ok := r.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		return ru
	}
	return nil
}

func (r *rosettaRun) logTail() string {
	data, _ := os.ReadFile(filepath.Join(r.dir, r.command+".log"))
	s := string(data)
	if len(s) > 3000 {
		s = s[len(s)-3000:]
	}
	return s
}

// slotState reads the run's slot: whether a consumer streams from it and
// its confirmed position.
func (r *rosettaRun) slotState(ctx context.Context, conn *pgx.Conn) (active bool, confirmed pglogrepl.LSN, err error) {
	var c string
	err = conn.QueryRow(ctx, "SELECT active, coalesce(confirmed_flush_lsn, '0/0')::text FROM pg_replication_slots WHERE slot_name = $1", r.slot).Scan(&active, &c)
	if err != nil {
		return false, 0, fmt.Errorf("read slot %s: %w", r.slot, err)
	}
	confirmed, err = pglogrepl.ParseLSN(c)
	return active, confirmed, err
}

// rowVisible reports whether row id is in the PostgreSQL destination.
func rowVisible(ctx context.Context, conn *pgx.Conn, table string, id int64) (bool, error) {
	var n int
	err := conn.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{"public", table}.Sanitize()+" WHERE id = $1", id).Scan(&n)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" {
		return false, nil // the sink has not created the table yet
	}
	return n > 0, err
}

// tableMissing reports PostgreSQL's undefined_table: the sink has not
// created the table yet.
func tableMissing(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42P01"
}

func anyRow(ctx context.Context, conn *pgx.Conn, table string) (bool, error) {
	var ok bool
	err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+pgx.Identifier{"public", table}.Sanitize()+")").Scan(&ok)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" {
		return false, nil
	}
	return ok, err
}

// consumerDrained reports whether the run's pipeline consumers have nothing
// pending and nothing unacknowledged: a sink acks only after its
// destination transaction committed, so every change it was sent is
// applied. The caller knows every change is stored (the slot confirmed).
func consumerDrained(ctx context.Context, js jetstream.JetStream, srcID int64) (bool, error) {
	s, err := js.Stream(ctx, contracts.StreamName(srcID))
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return false, nil
		}
		return false, err
	}
	lister := s.ListConsumers(ctx)
	seen := false
	for ci := range lister.Info() {
		seen = true
		if ci.NumPending > 0 || ci.NumAckPending > 0 {
			return false, nil
		}
	}
	if err := lister.Err(); err != nil {
		return false, err
	}
	return seen, nil
}

// verifyPG checks the destination table against the backlog's final state.
func verifyPG(ctx context.Context, conn *pgx.Conn, table string, bl *backlog) (string, error) {
	var n, sum int64
	err := conn.QueryRow(ctx, "SELECT count(*), coalesce(sum(ver), 0) FROM "+pgx.Identifier{"public", table}.Sanitize()).Scan(&n, &sum)
	if err != nil {
		return "", err
	}
	if n != bl.liveRows || sum != bl.verSum {
		return "", fmt.Errorf("destination %s has %d rows (ver sum %d), source final state %d rows (ver sum %d)", table, n, sum, bl.liveRows, bl.verSum)
	}
	return fmt.Sprintf("verified: %d rows, ver sum %d equal the source", n, sum), nil
}

func (b *bench) verifyDuck(path, table string, bl *backlog) (string, error) {
	out, err := exec.Command(b.duckqueryBin, "-wait", "60s", path,
		"SELECT CAST(count(*) AS VARCHAR) || ' ' || CAST(coalesce(sum(ver), 0) AS VARCHAR) FROM "+table).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("duckquery: %v: %s", err, out)
	}
	want := fmt.Sprintf("%d %d", bl.liveRows, bl.verSum)
	if !strings.Contains(string(out), want) {
		return "", fmt.Errorf("duckdb destination %s: %q, want count and ver sum %q", table, strings.TrimSpace(string(out)), want)
	}
	return "verified: " + want + " (rows, ver sum) equal the source", nil
}

// connectNATS connects to the run's NATS (the bench reads stream and
// consumer state): the external one of natsURL, or the embedded one as the
// services' user generated in its data directory.
func (r *rosettaRun) connectNATS(ctx context.Context) (jetstream.JetStream, func(), error) {
	if r.natsURL != "" {
		nc, js, err := natsx.Connect(ctx, r.natsURL, "rosetta-bench", nil)
		if err != nil {
			return nil, nil, err
		}
		return js, nc.Close, nil
	}
	return connectNATS(ctx, r.natsAddr, r.dataDir)
}

// connectNATS connects to the embedded NATS at addr as the services' user
// generated in dataDir.
func connectNATS(ctx context.Context, addr, dataDir string) (jetstream.JetStream, func(), error) {
	creds, err := natsx.ReadDevCredentials(dataDir)
	if err != nil {
		return nil, nil, err
	}
	nc, js, err := natsx.ConnectWith(ctx, "nats://"+addr, "rosetta-bench", nil, natsx.Liveness{}, creds.Services.Option())
	if err != nil {
		return nil, nil, err
	}
	return js, nc.Close, nil
}

func streamName(sourceID int64) string { return contracts.StreamName(sourceID) }

// profile takes a CPU profile of the process for secs seconds once its
// metrics listener is up, into dir/<run>-<command>.pprof (make bench
// -pprof DIR; the process runs with ROSETTA_PPROF=1).
func (r *rosettaRun) profile(dir string, secs int) {
	if r.metrics == "" || dir == "" {
		return
	}
	r.sampleHeap(dir)
	r.profiled = make(chan struct{})
	go func() {
		defer close(r.profiled)
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", r.metrics, secs)
		for i := 0; i < 100 && !r.exited(); i++ {
			resp, err := http.Get(url)
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				logf("profile %s: %s", r.name, resp.Status)
				return
			}
			os.MkdirAll(dir, 0o755)
			path := filepath.Join(dir, r.name+"-"+r.command+".pprof")
			f, err := os.Create(path)
			if err != nil {
				return
			}
			defer f.Close()
			if _, err := io.Copy(f, resp.Body); err == nil {
				r.profPath = path
			}
			return
		}
	}()
}

// profilePath waits (up to a minute) for the CPU profile of the run and
// returns its path, or "" without one (no -pprof, or the process ended
// before its profile was complete).
func (r *rosettaRun) profilePath() string {
	if r.profiled == nil {
		return ""
	}
	select {
	case <-r.profiled:
	case <-time.After(time.Minute):
		return ""
	}
	return r.profPath
}
