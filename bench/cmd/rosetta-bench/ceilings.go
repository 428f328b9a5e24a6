package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/pgrepl"
)

// measure is one timed drain or load: how many changes (or rows) in how
// long, and what the process it ran in used.
type measure struct {
	Changes   int64   `json:"changes"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"per_second"`
	// Process figures, for runs in a process of their own.
	PeakRSSMB      float64 `json:"peak_rss_mb,omitempty"`
	CPUSeconds     float64 `json:"cpu_seconds,omitempty"`
	CPUSecPerMChgs float64 `json:"cpu_seconds_per_million_changes,omitempty"`
	// CaptureInRun is, in an end-to-end run, the seconds until the slot's
	// confirmed position reached the backlog's end.
	CaptureInRun          float64 `json:"capture_in_run_seconds,omitempty"`
	CaptureInRunPerSecond float64 `json:"capture_in_run_per_second,omitempty"`
	// AckedSeconds is, in a capture-alone run, the seconds from the slot
	// active until the stream held every change (every publish
	// acknowledged): the capture rate without the confirm delay that
	// Seconds (the slot's confirmed position) includes.
	AckedSeconds   float64 `json:"acked_seconds,omitempty"`
	AckedPerSecond float64 `json:"acked_per_second,omitempty"`
	// CPU seconds per million changes of PostgreSQL backends in the run
	// (cpu.go): the source's walsender streaming the slot, and the
	// destination's backends (the staged-upsert ceiling's connection, the
	// sink's connections end to end).
	WalsenderCPUPerM   float64 `json:"walsender_cpu_seconds_per_million_changes,omitempty"`
	DestinationCPUPerM float64 `json:"destination_backend_cpu_seconds_per_million_changes,omitempty"`
	// NATSShare is the share of the Rosetta process's CPU profile spent
	// in the embedded NATS server's code (-pprof only).
	NATSShare float64 `json:"embedded_nats_share_of_cpu_profile,omitempty"`
	Note      string  `json:"note,omitempty"`
}

func newMeasure(n int64, d time.Duration) measure {
	return measure{Changes: n, Seconds: d.Seconds(), PerSecond: float64(n) / d.Seconds()}
}

// setUsage records CPU time from the process's rusage and its peak RSS
// (VmHWM sampled from /proc while it ran; rusage's maxrss is useless here:
// Linux carries the forking parent's high-water mark into a child's at
// exec, so every child would report at least the bench's own RSS).
func (m *measure) setUsage(ru *syscall.Rusage, hwmKB int64) {
	if ru == nil {
		return
	}
	m.PeakRSSMB = float64(hwmKB) / 1024
	m.CPUSeconds = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	if m.Changes > 0 {
		m.CPUSecPerMChgs = m.CPUSeconds / float64(m.Changes) * 1e6
	}
}

func copySlot(ctx context.Context, conn *pgx.Conn, from, to string) error {
	_, err := conn.Exec(ctx, "SELECT pg_copy_logical_replication_slot($1, $2)", from, to)
	if err != nil {
		return fmt.Errorf("copy slot %s to %s: %w", from, to, err)
	}
	return nil
}

func dropSlot(ctx context.Context, conn *pgx.Conn, name string) {
	_, _ = conn.Exec(ctx, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active", name)
}

// decodeLoop is the bare pglogrepl ceiling: receive and parse every
// pgoutput message of the slot, nothing else, until the sentinel's
// transaction commits. It returns the changes seen and that commit's end
// LSN (where a consumer's confirmed position ends up).
func decodeLoop(ctx context.Context, s *server, slot string) (measure, pglogrepl.LSN, error) {
	cfg, err := pgconn.ParseConfig(s.dsn("src") + "&replication=database")
	if err != nil {
		return measure{}, 0, err
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return measure{}, 0, fmt.Errorf("replication connection: %w", err)
	}
	defer conn.Close(context.Background())
	start := time.Now()
	if err := pgrepl.StartReplication(ctx, conn, slot, pubName, 0); err != nil {
		return measure{}, 0, err
	}
	var n int64
	sentinel := false
	var last pglogrepl.LSN
	status := time.Now()
	for {
		if time.Since(status) > 5*time.Second {
			if err := pgrepl.SendStatus(ctx, conn, last, false); err != nil {
				return measure{}, 0, err
			}
			status = time.Now()
		}
		m, ok, err := pgrepl.ReceiveMessage(ctx, conn, time.Now().Add(time.Second))
		if err != nil {
			return measure{}, 0, err
		}
		if !ok || m.XLogData == nil {
			continue
		}
		msg, err := pglogrepl.Parse(m.XLogData.WALData)
		if err != nil {
			return measure{}, 0, err
		}
		switch msg := msg.(type) {
		case *pglogrepl.InsertMessage:
			n++
			if c := msg.Tuple.Columns; len(c) > 0 && string(c[0].Data) == "-1" {
				sentinel = true
			}
		case *pglogrepl.UpdateMessage, *pglogrepl.DeleteMessage:
			n++
		case *pglogrepl.CommitMessage:
			last = msg.TransactionEndLSN
			if sentinel {
				return newMeasure(n, time.Since(start)), msg.TransactionEndLSN, nil
			}
		}
	}
}

// recvlogical is PostgreSQL's own decode rate: pg_recvlogical draining
// the slot to /dev/null with the options capture uses, until endpos.
func (b *bench) recvlogical(ctx context.Context, slot string, endpos string, changes int64) (measure, error) {
	s := b.pg
	ws, err := b.sampleBackends(ctx, "src", walsenderQuery, slot)
	if err != nil {
		return measure{}, err
	}
	defer ws.total()
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, "pg_recvlogical"),
		"-d", s.dsn("src"), "--slot", slot, "--start", "--no-loop",
		"-o", "proto_version=1", "-o", "publication_names="+pubName,
		"--endpos", endpos, "-s", "1", "-F", "0", "-f", "/dev/null")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return measure{}, fmt.Errorf("pg_recvlogical: %w", err)
	}
	hwm := sampleHWM(cmd.Process.Pid)
	err = cmd.Wait()
	d := time.Since(start)
	peak := hwm()
	wsCPU, _ := ws.total()
	if err != nil {
		return measure{}, fmt.Errorf("pg_recvlogical: %v: %s", err, out.String())
	}
	m := newMeasure(changes, d)
	m.WalsenderCPUPerM = perMillion(wsCPU, changes)
	if ps := cmd.ProcessState; ps != nil {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			m.setUsage(ru, peak)
		}
	}
	return m, nil
}

// sampleHWM reads the process's VmHWM (peak RSS since exec) every 50 ms
// until it exits; the returned function stops sampling and gives the last
// value seen, in kB.
func sampleHWM(pid int) func() int64 {
	var mu sync.Mutex
	var last int64
	stop := make(chan struct{})
	done := make(chan struct{})
	read := func() {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return
		}
		for _, l := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(l, "VmHWM:") {
				var kb int64
				fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(l, "VmHWM:")), "%d", &kb)
				mu.Lock()
				last = max(last, kb)
				mu.Unlock()
			}
		}
	}
	go func() {
		defer close(done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			read()
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	return func() int64 {
		close(stop)
		<-done
		read() // VmHWM only grows: the value now is the peak so far
		mu.Lock()
		defer mu.Unlock()
		return last
	}
}

// finalRows are the rows the table holds after the backlog, for the COPY
// ceiling: every inserted row at its last version.
func insertedRows(bl *backlog) [][]any {
	rows := make([][]any, 0, len(bl.ops))
	for _, o := range bl.ops {
		if o.kind == 'c' {
			rows = append(rows, makeRow(o.id, o.ver).values())
		}
	}
	return rows
}

// copyCeiling is a plain binary COPY of the inserted rows into an empty
// table in one statement.
func copyCeiling(ctx context.Context, s *server, db string, bl *backlog) (measure, error) {
	conn, err := s.connect(ctx, db)
	if err != nil {
		return measure{}, err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, fmt.Sprintf(tableDDL, "copy_ceiling")); err != nil {
		return measure{}, err
	}
	rows := insertedRows(bl)
	start := time.Now()
	n, err := conn.CopyFrom(ctx, pgx.Identifier{"copy_ceiling"}, columns, pgx.CopyFromRows(rows))
	if err != nil {
		return measure{}, fmt.Errorf("copy ceiling: %w", err)
	}
	return newMeasure(n, time.Since(start)), nil
}

// stagedCeiling is COPY into a staging table plus the version-guarded
// delete/update/insert the PostgreSQL driver runs (without its tombstone
// and truncate bookkeeping, so it is an upper bound): the changes in
// batches of batchSize, collapsed per key, one transaction per batch. The
// rate is source changes per second.
func stagedCeiling(ctx context.Context, s *server, db string, bl *backlog, batchSize int) (measure, error) {
	// Planned at every execution, as the PostgreSQL driver does: a plan
	// cached while the table was empty would scan it whole every batch.
	cc, err := pgx.ParseConfig(s.dsn(db))
	if err != nil {
		return measure{}, err
	}
	cc.DefaultQueryExecMode = pgx.QueryExecModeExec
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return measure{}, err
	}
	defer conn.Close(context.Background())
	ddl := []string{
		fmt.Sprintf(tableDDL, "staged_ceiling"),
		`ALTER TABLE staged_ceiling ADD COLUMN _lsn bigint NOT NULL, ADD COLUMN _seq bigint NOT NULL`,
		`CREATE TEMPORARY TABLE stage (id bigint, ver integer, qty integer, amount bigint, price double precision, note text,
			ts timestamptz, attrs jsonb, _del boolean NOT NULL, _lsn bigint NOT NULL, _seq bigint NOT NULL) ON COMMIT DELETE ROWS`,
	}
	for _, q := range ddl {
		if _, err := conn.Exec(ctx, q); err != nil {
			return measure{}, err
		}
	}
	const (
		del = `DELETE FROM staged_ceiling t USING stage s WHERE s._del AND t.id = s.id AND (t._lsn, t._seq) < (s._lsn, s._seq)`
		upd = `UPDATE staged_ceiling t SET ver = s.ver, qty = s.qty, amount = s.amount, price = s.price, note = s.note, ts = s.ts,
			attrs = s.attrs, _lsn = s._lsn, _seq = s._seq FROM stage s WHERE NOT s._del AND t.id = s.id AND (t._lsn, t._seq) < (s._lsn, s._seq)`
		ins = `INSERT INTO staged_ceiling SELECT s.id, s.ver, s.qty, s.amount, s.price, s.note, s.ts, s.attrs, s._lsn, s._seq
			FROM stage s WHERE NOT s._del AND NOT EXISTS (SELECT 1 FROM staged_ceiling t WHERE t.id = s.id)`
	)
	stageCols := append(append([]string{}, columns...), "_del", "_lsn", "_seq")
	backend := int(conn.PgConn().PID())
	cpu0, _ := procCPU(backend)
	start := time.Now()
	for i := 0; i < len(bl.ops); i += batchSize {
		batch := bl.ops[i:min(i+batchSize, len(bl.ops))]
		last := make(map[int64]int, len(batch))
		for j, o := range batch {
			last[o.id] = j
		}
		rows := make([][]any, 0, len(last))
		for j, o := range batch {
			if last[o.id] != j {
				continue
			}
			var vals []any
			if o.kind == 'd' {
				vals = []any{o.id, nil, nil, nil, nil, nil, nil, nil, true}
			} else {
				vals = append(makeRow(o.id, o.ver).values(), false)
			}
			rows = append(rows, append(vals, int64(i/batchSize+1), int64(j)))
		}
		tx, err := conn.Begin(ctx)
		if err != nil {
			return measure{}, err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"stage"}, stageCols, pgx.CopyFromRows(rows)); err != nil {
			tx.Rollback(ctx)
			return measure{}, fmt.Errorf("staged ceiling copy: %w", err)
		}
		for _, q := range []string{del, upd, ins} {
			if _, err := tx.Exec(ctx, q); err != nil {
				tx.Rollback(ctx)
				return measure{}, fmt.Errorf("staged ceiling: %w", err)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			return measure{}, err
		}
	}
	m := newMeasure(int64(len(bl.ops)), time.Since(start))
	if cpu1, ok := procCPU(backend); ok {
		m.DestinationCPUPerM = perMillion(cpu1-cpu0, m.Changes)
	}
	var cnt int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM staged_ceiling").Scan(&cnt); err != nil {
		return m, err
	}
	if cnt != bl.liveRows {
		return m, fmt.Errorf("staged ceiling left %d rows, want %d", cnt, bl.liveRows)
	}
	return m, nil
}

// jetstreamCeiling publishes as many messages, of the same average size,
// as capture stored for the backlog's n changes (st), asynchronously
// (window as capture's default) with a Nats-Msg-Id each to a file-backed
// stream configured like a source's, on an embedded server in this
// process, and waits for every ack. The rate is in changes: what
// JetStream alone allows for the backlog as capture batches it.
func jetstreamCeiling(ctx context.Context, dir string, n int64, st streamStats) (measure, error) {
	msgs, size := max(st.msgs, 1), max(st.avgBytes(), 1)
	// Fsync every second, as rosetta dev's embedded server by default.
	e, err := natsx.StartEmbedded(natsx.EmbeddedConfig{Dir: dir, Port: -1, SyncInterval: time.Second}, nil)
	if err != nil {
		return measure{}, err
	}
	defer e.Shutdown()
	nc, js, err := natsx.Connect(ctx, e.ClientURL(), "bench", nil)
	if err != nil {
		return measure{}, err
	}
	defer nc.Close()
	lim := natsx.DefaultStreamLimits()
	lim.MaxBytes = 16 << 30
	if _, err := natsx.EnsureSourceStream(ctx, js, 999, lim); err != nil {
		return measure{}, err
	}
	pub, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return measure{}, err
	}
	body := make([]byte, size)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	// Like capture: at most a window of unacknowledged publishes, waiting
	// for the oldest when it is full.
	const window = 4096
	pending := make([]jetstream.PubAckFuture, 0, msgs)
	oldest := 0
	// The server is embedded: this process's CPU is the client's and the
	// server's, what publishing costs at the least.
	cpu0 := selfCPU()
	start := time.Now()
	for i := int64(0); i < msgs; i++ {
		for len(pending)-oldest >= window {
			select {
			case <-pending[oldest].Ok():
			case err := <-pending[oldest].Err():
				return measure{}, fmt.Errorf("publish: %w", err)
			case <-ctx.Done():
				return measure{}, ctx.Err()
			}
			oldest++
		}
		msg := nats.NewMsg("rosetta.cdc.999.public.t.0")
		msg.Data = body
		msg.Header.Set(jetstream.MsgIDHeader, "999:"+strconv.FormatInt(i, 10))
		f, err := pub.PublishMsgAsync(msg)
		if err != nil {
			return measure{}, fmt.Errorf("publish: %w", err)
		}
		pending = append(pending, f)
	}
	select {
	case <-pub.PublishAsyncComplete():
	case <-ctx.Done():
		return measure{}, ctx.Err()
	}
	m := newMeasure(n, time.Since(start))
	m.CPUSeconds = (selfCPU() - cpu0).Seconds()
	m.CPUSecPerMChgs = perMillion(selfCPU()-cpu0, n)
	m.Note = fmt.Sprintf("%d messages of %d bytes (capture's batching of the backlog); CPU: the bench process's own (client and embedded server) during the publishes", msgs, size)
	return m, nil
}
