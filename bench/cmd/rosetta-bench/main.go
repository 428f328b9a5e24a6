// Command rosetta-bench measures Rosetta against the physical ceilings of
// the same machine, in the same run (docs/performance.md): it starts its
// own PostgreSQL, writes a backlog of changes with nothing consuming,
// copies the replication slot once per consumer so that every consumer
// drains the identical WAL, and times PostgreSQL's own decoding
// (pg_recvlogical), a bare pglogrepl loop, JetStream publishing, COPY, a
// staged upsert, and bin/rosetta processes (capture alone, sink alone, end
// to end into PostgreSQL and DuckDB). Then latency at fixed offered loads.
// It prints a table and writes a JSON result file.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

const pubName = "bench_pub"

type bench struct {
	pg           *server
	root         string
	rosettaBin   string
	duckqueryBin string
	pprof        bool
	pprofDir     string
	profileSecs  int
	res          *results
	// latencyMethods are the latency phases' methods, in order.
	latencyMethods []string
	// snapshotRows is the initial snapshot phase's table size (0: none).
	snapshotRows int64
	// scale is the scaling phase's setup (scale.changes 0: none).
	scale scaleOptions
}

func main() {
	changes := flag.Int("changes", 1_000_000, "changes per backlog (BENCH_SCALE overrides)")
	wl := flag.String("workloads", "ins-100,ins-1,mix-100,mix-1,bigtx", "workloads to run: ins-100, ins-1, mix-100, mix-1, bigtx")
	latDur := flag.Duration("latency-duration", 60*time.Second, "duration of each latency phase (0 skips them)")
	latRates := flag.String("latency-rates", "2000,5000,10000", "offered loads in single-row transactions/s; half = half the sustainable end-to-end rate")
	snapRows := flag.Int64("snapshot-rows", -1, "rows of the initial snapshot phase (-1: the backlog's change count; 0 skips it)")
	latMethods := flag.String("latency-methods", "server,client", "latency methods: server (generated inside PostgreSQL, stamped by the destination), client (client connections and a poller)")
	out := flag.String("out", "bench/results/latest.json", "JSON result file")
	rosettaBin := flag.String("rosetta", "bin/rosetta", "rosetta binary")
	duckBin := flag.String("duckquery", "bin/duckquery", "duckquery binary")
	pprof := flag.String("pprof", "", "directory to write CPU profiles of the Rosetta processes into (needs ROSETTA_PPROF support)")
	profileSecs := flag.Int("pprof-seconds", 10, "length of each CPU profile")
	keep := flag.Bool("keep", false, "keep the bench's PostgreSQL directory")
	scaleChanges := flag.Int("scale-changes", 200_000, "changes of the scaling phase's backlog (0 skips the phase)")
	scaleWorkload := flag.String("scale-workload", "mix-100", "the scaling phase's workload (as -workloads names them)")
	scaleParts := flag.String("scale-partitions", "1,2,4", "the scaling phase's partition counts, each run with every -scale-instances count on one nats-server")
	scaleInst := flag.String("scale-instances", "1,2", "the scaling phase's sink process counts")
	scaleRepl := flag.String("scale-replicas", "1,3", "stream replica counts run on a three-node JetStream cluster (P=1, one sink)")
	natsBin := flag.String("nats-server", "", "nats-server binary for the scaling phase (default: built from go.mod)")
	flag.Parse()
	if v := os.Getenv("BENCH_SCALE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1000 {
			log.Fatalf("BENCH_SCALE=%q: want a change count of at least 1000", v)
		}
		*changes = n
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	root, err := os.MkdirTemp("", "rosetta-bench-")
	if err != nil {
		log.Fatal(err)
	}
	// PostgreSQL runs as the postgres user under root: it must reach its
	// directory inside this one.
	if err := os.Chmod(root, 0o755); err != nil {
		log.Fatal(err)
	}
	b := &bench{root: root, pprof: *pprof != "", pprofDir: *pprof, profileSecs: *profileSecs, res: newResults(*changes)}
	for _, p := range []*string{rosettaBin, duckBin} {
		if *p, err = filepath.Abs(*p); err != nil {
			log.Fatal(err)
		}
		if _, err := os.Stat(*p); err != nil {
			log.Fatalf("%s: %v (run make build)", *p, err)
		}
	}
	b.rosettaBin, b.duckqueryBin = *rosettaBin, *duckBin
	if b.pg, err = startServer(filepath.Join(root, "pg")); err != nil {
		log.Fatal(err)
	}
	defer func() {
		b.pg.stop()
		if !*keep {
			os.RemoveAll(root)
		}
	}()
	b.scale = scaleOptions{changes: *scaleChanges, workload: *scaleWorkload, natsServer: *natsBin}
	for _, f := range []struct {
		name, val string
		dst       *[]int
	}{{"scale-partitions", *scaleParts, &b.scale.partitions}, {"scale-instances", *scaleInst, &b.scale.instances}, {"scale-replicas", *scaleRepl, &b.scale.replicas}} {
		if *f.dst, err = parseInts(f.name, f.val); err != nil {
			log.Fatal(err)
		}
	}
	b.latencyMethods = strings.Split(*latMethods, ",")
	b.snapshotRows = *snapRows
	if b.snapshotRows < 0 {
		b.snapshotRows = int64(*changes)
	}
	if err := run(ctx, b, *changes, strings.Split(*wl, ","), *latDur, *latRates); err != nil {
		log.Printf("bench failed: %v", err)
		b.res.Error = err.Error()
	}
	b.res.Finished = time.Now().UTC()
	b.res.print(os.Stdout)
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err == nil {
		data, _ := json.MarshalIndent(b.res, "", "  ")
		if err := os.WriteFile(*out, append(data, '\n'), 0o644); err != nil {
			log.Print(err)
		} else {
			fmt.Println("results written to", *out)
		}
	}
	if b.res.Error != "" {
		b.pg.stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, b *bench, changes int, names []string, latDur time.Duration, latRates string) error {
	if err := b.pg.createDB(ctx, "src"); err != nil {
		return err
	}
	conn, err := b.pg.connect(ctx, "src")
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if err := b.pg.createDB(ctx, "ceil"); err != nil {
		return err
	}
	var sustainable float64
	for _, name := range names {
		if strings.TrimSpace(name) == "" {
			continue // -workloads= runs none (e.g. the console phase alone)
		}
		w, err := parseWorkload(strings.TrimSpace(name), changes)
		if err != nil {
			return err
		}
		wr, err := b.runWorkload(ctx, conn, w)
		if wr != nil {
			b.res.Workloads = append(b.res.Workloads, wr)
		}
		if err != nil {
			return fmt.Errorf("workload %s: %w", w.Name, err)
		}
		if w.Name == "ins-1" && wr.E2EPostgres != nil {
			sustainable = wr.E2EPostgres.PerSecond
		}
	}
	if b.snapshotRows > 0 {
		logf("snapshot: a table of %d rows, COPY pipe and appender ceilings, rosetta into PostgreSQL and DuckDB", b.snapshotRows)
		sr, err := b.runSnapshot(ctx, conn, b.snapshotRows)
		b.res.Snapshot = sr
		if err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
	}
	if b.scale.changes > 0 {
		logf("scale: %d changes through capture and 1..n sinks, partitions %v, sinks %v, replicas %v", b.scale.changes, b.scale.partitions, b.scale.instances, b.scale.replicas)
		sr, err := b.runScale(ctx, conn, b.scale)
		b.res.Scale = sr
		if err != nil {
			return fmt.Errorf("scale: %w", err)
		}
	}
	if latDur > 0 {
		if sustainable == 0 {
			for _, wr := range b.res.Workloads {
				if wr.E2EPostgres != nil && wr.Workload.Mix == "insert" && wr.Workload.Name != "bigtx" {
					sustainable = wr.E2EPostgres.PerSecond
				}
			}
		}
		var rates []float64
		for _, r := range strings.Split(latRates, ",") {
			r = strings.TrimSpace(r)
			if r == "half" {
				if sustainable > 0 {
					rates = append(rates, float64(int(sustainable/2)))
				}
				continue
			}
			v, err := strconv.ParseFloat(r, 64)
			if err != nil {
				return fmt.Errorf("latency rate %q: %w", r, err)
			}
			rates = append(rates, v)
		}
		lr, err := b.runLatency(ctx, rates, latDur, b.latencyMethods)
		b.res.Latency = lr
		if err != nil {
			return fmt.Errorf("latency: %w", err)
		}
	}
	if *consoleRuns > 0 {
		logf("console: first render of the overview with %d paused pipelines, %d runs in Chromium", *consolePipelines, *consoleRuns)
		cr, err := b.runConsole(ctx)
		b.res.Console = cr
		if err != nil {
			return fmt.Errorf("console: %w", err)
		}
	}
	return nil
}

func parseWorkload(name string, changes int) (workload, error) {
	w := workload{Name: name, Changes: changes, Full: true, table: "bench_" + strings.ReplaceAll(name, "-", "_")}
	switch name {
	case "ins-100":
		w.Mix, w.TxSize = "insert", 100
	case "ins-1":
		w.Mix, w.TxSize = "insert", 1
	case "mix-100":
		w.Mix, w.TxSize = "70/20/10", 100
	case "mix-1":
		w.Mix, w.TxSize = "70/20/10", 1
	case "bigtx":
		w.Mix, w.TxSize, w.Full = "insert", changes-1, false
	default:
		return w, fmt.Errorf("unknown workload %q", name)
	}
	return w, nil
}

func ptr(m measure) *measure { return &m }

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// runWorkload builds one backlog and drains a copy of its slot with every
// consumer in turn.
func (b *bench) runWorkload(ctx context.Context, conn *pgx.Conn, w workload) (*workloadResult, error) {
	wr := &workloadResult{Workload: w}
	tbl := pgx.Identifier{w.table}.Sanitize()
	if _, err := conn.Exec(ctx, fmt.Sprintf(tableDDL, tbl)); err != nil {
		return nil, err
	}
	// The publication must exist in the catalog as of the backlog's WAL:
	// pgoutput reads it with the historic snapshot of each change.
	if _, err := conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+pubName); err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "CREATE PUBLICATION "+pubName+" FOR TABLE "+tbl+" WITH (publish = 'insert, update, delete, truncate')"); err != nil {
		return nil, err
	}
	origin := w.table + "_origin"
	if _, err := conn.Exec(ctx, "SELECT pg_create_logical_replication_slot($1, 'pgoutput')", origin); err != nil {
		return nil, err
	}
	defer dropSlot(context.Background(), conn, origin)
	logf("%s: writing a backlog of %d changes (%s, %d per transaction)", w.Name, w.Changes, w.Mix, w.TxSize)
	bl, err := buildBacklog(ctx, conn, w)
	if err != nil {
		return nil, err
	}
	wr.BacklogSeconds = bl.buildTime.Seconds()
	logf("%s: backlog written in %s; end %s", w.Name, bl.buildTime.Round(time.Millisecond), bl.endLSN)
	n := int64(len(bl.ops))

	slotFor := func(consumer string) (string, error) {
		name := w.table + "_" + consumer
		return name, copySlot(ctx, conn, origin, name)
	}

	// Ceilings of decoding.
	slot, err := slotFor("loop")
	if err != nil {
		return wr, err
	}
	m, endLSN, err := decodeLoop(ctx, b.pg, slot)
	dropSlot(ctx, conn, slot)
	if err != nil {
		return wr, fmt.Errorf("pglogrepl loop: %w", err)
	}
	if m.Changes != n {
		return wr, fmt.Errorf("pglogrepl loop saw %d changes, backlog has %d", m.Changes, n)
	}
	wr.DecodeLoop = ptr(m)
	logf("%s: pglogrepl decode loop %.0f changes/s", w.Name, m.PerSecond)

	if slot, err = slotFor("recv"); err != nil {
		return wr, err
	}
	m, err = b.recvlogical(ctx, slot, bl.endLSN, n)
	dropSlot(ctx, conn, slot)
	if err != nil {
		return wr, err
	}
	wr.RecvLogical = ptr(m)
	logf("%s: pg_recvlogical %.0f changes/s", w.Name, m.PerSecond)

	if slot, err = slotFor("sub"); err != nil {
		return wr, err
	}
	m, err = b.subscriptionCeiling(ctx, slot, bl, w.table)
	dropSlot(ctx, conn, slot)
	if err != nil {
		return wr, fmt.Errorf("logical replication ceiling: %w", err)
	}
	wr.Subscription = ptr(m)
	logf("%s: PostgreSQL logical replication %.0f changes/s", w.Name, m.PerSecond)

	if w.Full {
		// Capture alone: bin/rosetta capture into its embedded JetStream.
		if slot, err = slotFor("cap"); err != nil {
			return wr, err
		}
		capRun := b.newRun(w.table+"_cap", "capture", "postgres", slot, w.table)
		m, st, err := b.runCapture(ctx, conn, capRun, n, endLSN)
		if err != nil {
			return wr, fmt.Errorf("capture alone: %w", err)
		}
		wr.Capture = ptr(m)
		wr.MessageBytes, wr.Messages = st.avgBytes(), st.msgs
		logf("%s: capture alone %.0f changes/s (%d messages of %d bytes on average)", w.Name, m.PerSecond, st.msgs, st.avgBytes())

		// Sink alone: bin/rosetta sink draining the stream capture filled.
		sinkRun := b.newRun(w.table+"_cap", "sink", "postgres", slot, w.table)
		sinkRun.srcID, sinkRun.natsAddr = capRun.srcID, capRun.natsAddr
		m, err = b.runSinkAlone(ctx, sinkRun, filepath.Join(capRun.dir, "data"), bl)
		dropSlot(ctx, conn, slot)
		b.pg.dropDB(ctx, sinkRun.dstDB)
		os.RemoveAll(capRun.dir)
		if err != nil {
			return wr, fmt.Errorf("sink alone: %w", err)
		}
		wr.SinkPostgres = ptr(m)
		logf("%s: sink alone into PostgreSQL %.0f changes/s", w.Name, m.PerSecond)

		m, err = jetstreamCeiling(ctx, filepath.Join(b.root, "js-ceiling"), n, st)
		os.RemoveAll(filepath.Join(b.root, "js-ceiling"))
		if err != nil {
			return wr, fmt.Errorf("jetstream ceiling: %w", err)
		}
		wr.JetStream = ptr(m)
		logf("%s: JetStream async publish %.0f msgs/s", w.Name, m.PerSecond)

		m, err = copyCeiling(ctx, b.pg, "ceil", bl)
		if err != nil {
			return wr, err
		}
		wr.Copy = ptr(m)
		m, err = stagedCeiling(ctx, b.pg, "ceil", bl, 1000)
		if err != nil {
			return wr, err
		}
		wr.StagedUpsert = ptr(m)
		for _, t := range []string{"copy_ceiling", "staged_ceiling"} {
			_ = b.pg.exec(ctx, "ceil", "DROP TABLE IF EXISTS "+t)
		}
		logf("%s: COPY %.0f rows/s, staged upsert %.0f changes/s", w.Name, wr.Copy.PerSecond, wr.StagedUpsert.PerSecond)
	}

	// End to end into PostgreSQL.
	if slot, err = slotFor("e2epg"); err != nil {
		return wr, err
	}
	r := b.newRun(w.table+"_e2epg", "dev", "postgres", slot, w.table)
	m, err = b.runEndToEnd(ctx, conn, r, bl, endLSN)
	dropSlot(ctx, conn, slot)
	b.pg.dropDB(ctx, r.dstDB)
	os.RemoveAll(r.dir)
	if err != nil {
		return wr, fmt.Errorf("end to end into postgres: %w", err)
	}
	wr.E2EPostgres = ptr(m)
	logf("%s: end to end into PostgreSQL %.0f changes/s, rosetta dev peak RSS %.0f MB", w.Name, m.PerSecond, m.PeakRSSMB)

	if w.Full {
		if slot, err = slotFor("e2educk"); err != nil {
			return wr, err
		}
		r := b.newRun(w.table+"_e2educk", "dev", "duckdb", slot, w.table)
		m, err = b.runEndToEnd(ctx, conn, r, bl, endLSN)
		dropSlot(ctx, conn, slot)
		os.RemoveAll(r.dir)
		if err != nil {
			return wr, fmt.Errorf("end to end into duckdb: %w", err)
		}
		wr.E2EDuckDB = ptr(m)
		logf("%s: end to end into DuckDB %.0f changes/s", w.Name, m.PerSecond)
	}
	if _, err := conn.Exec(ctx, "DROP TABLE "+tbl); err != nil {
		return wr, err
	}
	return wr, nil
}
