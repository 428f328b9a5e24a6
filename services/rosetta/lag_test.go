package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// destStatus is the part of a destination of GET /pipelines/{id} (and of
// an item of GET /status) the test reads.
type destStatus struct {
	DestinationID int64    `json:"destination_id"`
	Health        string   `json:"health"`
	Reason        string   `json:"reason"`
	LagSeconds    *float64 `json:"lag_seconds"`
	LagBytes      *int64   `json:"lag_bytes"`
	Pending       *int64   `json:"pending"`
	Throughput    float64  `json:"throughput"`
	SourceLSN     string   `json:"source_lsn"`
	AppliedLSN    string   `json:"applied_commit_lsn"`
}

func (d destStatus) String() string {
	f := func(p any) string {
		switch v := p.(type) {
		case *float64:
			if v != nil {
				return fmt.Sprint(*v)
			}
		case *int64:
			if v != nil {
				return fmt.Sprint(*v)
			}
		}
		return "null"
	}
	return fmt.Sprintf("%s %q lag=%ss/%sB pending=%s tput=%.2f applied=%s source=%s", d.Health, d.Reason,
		f(d.LagSeconds), f(d.LagBytes), f(d.Pending), d.Throughput, d.AppliedLSN, d.SourceLSN)
}

// TestDevProgressAndLag runs the real `rosetta dev` binary and checks what
// an operator sees. Start-up prints readable steps (config DB, NATS, API,
// capture running, the initial snapshot, changes flowing). Then the
// destination's PostgreSQL is stopped while the source keeps taking
// writes: GET /pipelines/{id} and GET /status show lag_seconds growing,
// changes pending and the destination ERROR or LAGGING with a reason.
// After the destination is back, lag returns to 0, nothing is pending and
// health is HEALTHY, and the destination holds every source row.
func TestDevProgressAndLag(t *testing.T) {
	t.Parallel()
	bin, cleanup, err := testkit.BuildBinary(".", "rosetta", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	pg := testkit.StartPostgres(t)
	dstPG := testkit.StartPostgres(t)
	cfgDB := pg.CreateDatabase(t, "cfg")
	srcDB := pg.CreateDatabase(t, "src")
	dstDB := dstPG.CreateDatabase(t, "dst")
	pg.Exec(t, srcDB, `CREATE TABLE public.orders (id bigint PRIMARY KEY, title text);
		INSERT INTO public.orders SELECT g, 'row ' || g FROM generate_series(1, 3000) g; ANALYZE public.orders`)

	httpAddr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	natsAddr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	logs := &testkit.LogBuffer{}
	cmd := exec.Command(bin, "dev", "--lag-threshold", "3s")
	cmd.Env = append(os.Environ(),
		"ROSETTA_CONFIG_DSN="+pg.DSN(cfgDB),
		"ROSETTA_HTTP_ADDR="+httpAddr,
		"ROSETTA_EMBEDDED_NATS_ADDR="+natsAddr,
		"ROSETTA_NATS_URL=",
		"ROSETTA_DATA_DIR="+t.TempDir(),
		"ROSETTA_RECONCILE_INTERVAL=1s",
		"ROSETTA_SINK_BATCH_WAIT=50ms",
		"ROSETTA_WAL_MONITOR_INTERVAL=1s",
		"ROSETTA_LOG_FORMAT=text",
		"ROSETTA_API_TOKEN="+testAPIToken,
	)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(40 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("rosetta dev output:\n%s", logs.Tail(20000))
		}
	})
	waitLine := func(what string, d time.Duration) string {
		t.Helper()
		deadline := time.Now().Add(d)
		for time.Now().Before(deadline) {
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, what) {
					return l
				}
			}
			select {
			case err := <-exited:
				t.Fatalf("rosetta dev exited: %v", err)
			case <-time.After(100 * time.Millisecond):
			}
		}
		t.Fatalf("no line with %q within %s", what, d)
		return ""
	}
	waitLine("rosetta dev: API listening on http://"+httpAddr+"/api/v1", 90*time.Second)
	waitLine("rosetta dev: config DB migrated (postgres://postgres@", time.Second)
	waitLine("rosetta dev: NATS up at nats://"+natsAddr+" (embedded", time.Second)

	call := apiCaller(t, "http://"+httpAddr+"/api/v1")
	var src, dst, pipe struct {
		ID int64 `json:"id"`
	}
	call("POST", "/sources", map[string]any{"name": "shop", "host": pg.Host(), "port": pg.Port,
		"database": srcDB, "user": "postgres", "sslmode": "disable"}, &src)
	call("POST", "/destinations", map[string]any{"name": "warehouse", "type": "postgres", "config": map[string]any{
		"host": dstPG.Host(), "port": dstPG.Port, "database": dstDB, "user": "postgres", "sslmode": "disable"}}, &dst)
	call("POST", "/pipelines", map[string]any{"name": "orders", "source_id": src.ID,
		"destination_ids": []int64{dst.ID}, "tables": []string{"public.orders"}}, &pipe)
	call("POST", fmt.Sprintf("/pipelines/%d/start", pipe.ID), nil, nil)

	waitLine(fmt.Sprintf("rosetta dev: capture running for source %d (shop", src.ID), 60*time.Second)
	waitLine(fmt.Sprintf("rosetta dev: snapshot of public.orders (pipeline %d): done, 3,000 rows", pipe.ID), 90*time.Second)
	waitLine(fmt.Sprintf("rosetta dev: changes flowing: pipeline %d (orders) -> destination %d (warehouse)", pipe.ID, dst.ID), 60*time.Second)

	status := func() destStatus {
		t.Helper()
		var d struct {
			Destinations []destStatus `json:"destinations"`
		}
		call("GET", fmt.Sprintf("/pipelines/%d", pipe.ID), nil, &d)
		if len(d.Destinations) != 1 {
			t.Fatalf("destinations = %+v", d.Destinations)
		}
		return d.Destinations[0]
	}
	caughtUp := func(s destStatus) bool {
		return s.Health == "HEALTHY" && s.Reason == "" && s.LagSeconds != nil && *s.LagSeconds == 0 &&
			s.LagBytes != nil && *s.LagBytes == 0 && s.Pending != nil && *s.Pending == 0
	}
	waitStatus := func(what string, d time.Duration, ok func(destStatus) bool) destStatus {
		t.Helper()
		deadline := time.Now().Add(d)
		var last destStatus
		for time.Now().Before(deadline) {
			if last = status(); ok(last) {
				return last
			}
			time.Sleep(250 * time.Millisecond)
		}
		t.Fatalf("%s: not within %s; last: %s", what, d, last)
		return last
	}
	s := waitStatus("caught up after the snapshot", 60*time.Second, caughtUp)
	t.Logf("after the snapshot: %s", s)
	if s.AppliedLSN == "" {
		t.Fatalf("no applied commit LSN reported: %s", s)
	}

	// The source takes a write every 50ms while writing runs.
	var lastID atomic.Int64
	lastID.Store(3000)
	startWriting := func() (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		conn := pg.Connect(t, srcDB)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for ctx.Err() == nil {
				if _, err := conn.Exec(ctx, "INSERT INTO public.orders VALUES ($1, 'live')", lastID.Add(1)); err != nil {
					if ctx.Err() == nil {
						t.Errorf("insert: %v", err)
					}
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}()
		return func() { cancel(); <-done }
	}

	// Writes continue while the destination is down.
	stopWriting := startWriting()
	defer stopWriting()
	time.Sleep(time.Second)
	if err := dstPG.Stop("fast"); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	var first, last destStatus
	sawPending, sawUnhealthy := false, false
	for time.Since(down) < 12*time.Second {
		s := status()
		if first.LagSeconds == nil && s.LagSeconds != nil && *s.LagSeconds > 0 {
			first = s
		}
		last = s
		if s.Pending != nil && *s.Pending > 0 {
			sawPending = true
		}
		if (s.Health == "ERROR" || s.Health == "LAGGING") && strings.Contains(s.Reason, " s behind") && strings.Contains(s.Reason, "pending") {
			if !sawUnhealthy {
				t.Logf("while the destination is down: %s", s)
			}
			sawUnhealthy = true
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("destination down: first %s; last %s", first, last)
	if !sawPending {
		t.Errorf("pending never rose above 0 while the destination was down")
	}
	if !sawUnhealthy {
		t.Errorf("health never ERROR or LAGGING with a reason naming the lag while the destination was down; last %s", last)
	}
	if first.LagSeconds == nil || last.LagSeconds == nil || *last.LagSeconds < *first.LagSeconds+5 {
		t.Errorf("lag_seconds did not grow by 5s over 12s of outage: first %s, last %s", first, last)
	}
	if last.LagBytes == nil || *last.LagBytes <= 0 {
		t.Errorf("lag_bytes not positive while behind: %s", last)
	}
	var list struct {
		Items []struct {
			PipelineID int64 `json:"pipeline_id"`
			destStatus
		} `json:"items"`
		Total int64 `json:"total"`
	}
	call("GET", "/status", nil, &list)
	if list.Total != 1 || len(list.Items) != 1 || list.Items[0].PipelineID != pipe.ID || list.Items[0].Health == "HEALTHY" ||
		list.Items[0].LagSeconds == nil || *list.Items[0].LagSeconds <= 0 {
		t.Errorf("GET /status while the destination is down = %+v", list)
	}

	if err := dstPG.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	stopWriting()
	s = waitStatus("caught up after the destination came back", 90*time.Second, caughtUp)
	t.Logf("after the outage: %s", s)
	if s.Throughput <= 0 {
		t.Errorf("throughput over the last minute is %v after applying the backlog", s.Throughput)
	}
	waitLine(fmt.Sprintf("pipeline %d (orders) -> destination %d (warehouse): ERROR: ", pipe.ID, dst.ID), time.Second)
	waitLine(fmt.Sprintf("pipeline %d (orders) -> destination %d (warehouse): recovered, HEALTHY", pipe.ID, dst.ID), 10*time.Second)

	// A slow destination: a transaction holds a lock on the table, so the
	// sink's apply waits without failing. Past --lag-threshold 3s the
	// destination is LAGGING, with the reason, although the sink reports
	// no error; once the lock is gone it catches up.
	lockConn := dstPG.Connect(t, dstDB)
	lockTx, err := lockConn.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockTx.Exec(context.Background(), "LOCK TABLE public.orders IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	stopWriting = startWriting()
	s = waitStatus("LAGGING behind a locked destination table", 30*time.Second, func(s destStatus) bool {
		return s.Health == "LAGGING" && strings.Contains(s.Reason, " s behind, ") && strings.HasSuffix(s.Reason, " messages pending") &&
			s.LagSeconds != nil && *s.LagSeconds > 3
	})
	t.Logf("slow destination: %s", s)
	stopWriting()
	if err := lockTx.Rollback(context.Background()); err != nil {
		t.Fatal(err)
	}
	s = waitStatus("caught up after the lock was released", 60*time.Second, caughtUp)

	// Counted in the source, not by the writer: an insert cancelled by
	// stopWriting may still have committed.
	count := func(p *testkit.Postgres, db string) int64 {
		var n int64
		if err := p.Connect(t, db).QueryRow(context.Background(), "SELECT count(*) FROM public.orders").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// The status says caught up with what the source was known to hold
	// when it was read; the writer's last inserts (cancelled by
	// stopWriting, yet committed) may reach the destination just after.
	n, want := count(dstPG, dstDB), count(pg, srcDB)
	for deadline := time.Now().Add(30 * time.Second); n != want && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		n = count(dstPG, dstDB)
	}
	if n != want || want <= 3000 {
		t.Errorf("destination has %d rows, the source %d", n, want)
	}
	var lines []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.HasPrefix(l, progressPrefix) {
			lines = append(lines, l)
		}
	}
	t.Logf("progress lines of rosetta dev:\n%s", strings.Join(lines, "\n"))
}
