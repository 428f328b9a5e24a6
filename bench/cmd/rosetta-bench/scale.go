package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/pkg/natsx"
)

// The scaling phase (make bench; docs/performance.md "Scaling out"): one
// backlog drained by bin/rosetta capture into external nats-server
// processes, then by 1..n bin/rosetta sink processes on one PostgreSQL
// destination, for each partition count; and the same at one partition on
// a three-node JetStream cluster with one and with three replicas. Every
// run gets a copy of the same slot, so each drains the identical WAL, and
// ends with the destination checked against the source.

// scaleConfig is one run of the scaling phase.
type scaleConfig struct {
	Nodes      int `json:"nats_nodes"`
	Replicas   int `json:"replicas"`
	Partitions int `json:"partitions"`
	Instances  int `json:"sink_instances"`
}

func (c scaleConfig) String() string {
	return fmt.Sprintf("nodes=%d R%d P=%d sinks=%d", c.Nodes, c.Replicas, c.Partitions, c.Instances)
}

// scaleRun is what one configuration measured.
type scaleRun struct {
	Config scaleConfig `json:"config"`
	// Capture is bin/rosetta capture from the slot active to every publish
	// acknowledged; its CPU is the capture process's.
	Capture measure `json:"capture"`
	// CaptureNATSCPUPerM is the nats-server processes' CPU over the
	// capture run, per million changes.
	CaptureNATSCPUPerM float64 `json:"capture_nats_cpu_seconds_per_million_changes"`
	// Sink is the sink processes from the first row visible to every
	// consumer drained and the destination equal to the source; its CPU
	// is the sum of the sink processes' and its RSS their largest.
	Sink measure `json:"sink"`
	// SinkNATSCPUPerM is the nats-server processes' CPU over the sink run.
	SinkNATSCPUPerM float64 `json:"sink_nats_cpu_seconds_per_million_changes"`
	// SinkCPUShares is each sink process's share of the sinks' CPU: how
	// the partitions' work was spread (pins are first come, first served).
	SinkCPUShares []float64 `json:"sink_cpu_shares"`
	Note          string    `json:"note,omitempty"`
}

type scaleResult struct {
	Workload workload    `json:"workload"`
	Runs     []*scaleRun `json:"runs"`
}

// scaleOptions are the scaling phase's flags.
type scaleOptions struct {
	changes    int
	workload   string
	partitions []int
	instances  []int
	replicas   []int
	natsServer string
}

func parseInts(flagName, s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, err := strconv.Atoi(f)
		if err != nil || v < 1 {
			return nil, fmt.Errorf("-%s %q: want a comma-separated list of positive integers", flagName, s)
		}
		out = append(out, v)
	}
	return out, nil
}

// configs lists the runs: every partitions × instances on one node at R1,
// then each replica count on a three-node cluster at P=1 with one sink.
func (o scaleOptions) configs() []scaleConfig {
	var out []scaleConfig
	for _, p := range o.partitions {
		for _, i := range o.instances {
			out = append(out, scaleConfig{Nodes: 1, Replicas: 1, Partitions: p, Instances: i})
		}
	}
	for _, r := range o.replicas {
		out = append(out, scaleConfig{Nodes: 3, Replicas: r, Partitions: 1, Instances: 1})
	}
	return out
}

func (b *bench) runScale(ctx context.Context, conn *pgx.Conn, o scaleOptions) (*scaleResult, error) {
	w, err := parseWorkload(o.workload, o.changes)
	if err != nil {
		return nil, err
	}
	w.table = "bench_scale"
	res := &scaleResult{Workload: w}
	bin := o.natsServer
	if bin == "" {
		// The nats-server of go.mod's version, as the fault suite builds it.
		bin = filepath.Join(b.root, "bin", "nats-server")
		logf("scale: building nats-server from go.mod")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/nats-io/nats-server/v2")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return res, fmt.Errorf("build nats-server: %w", err)
		}
	}
	tbl := pgx.Identifier{w.table}.Sanitize()
	for _, q := range []string{fmt.Sprintf(tableDDL, tbl), "DROP PUBLICATION IF EXISTS " + pubName,
		"CREATE PUBLICATION " + pubName + " FOR TABLE " + tbl + " WITH (publish = 'insert, update, delete, truncate')"} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return res, err
		}
	}
	defer conn.Exec(context.Background(), "DROP TABLE IF EXISTS "+tbl)
	origin := w.table + "_origin"
	if _, err := conn.Exec(ctx, "SELECT pg_create_logical_replication_slot($1, 'pgoutput')", origin); err != nil {
		return res, err
	}
	defer dropSlot(context.Background(), conn, origin)
	logf("scale: writing a backlog of %d changes (%s, %d per transaction)", w.Changes, w.Mix, w.TxSize)
	bl, err := buildBacklog(ctx, conn, w)
	if err != nil {
		return res, err
	}
	var cl *natsProcs
	defer func() { cl.stop() }()
	for i, c := range o.configs() {
		if cl == nil || len(cl.nodes) != c.Nodes {
			cl.stop()
			if cl, err = startNATSProcs(ctx, bin, filepath.Join(b.root, fmt.Sprintf("nats-%d", i)), c.Nodes); err != nil {
				return res, err
			}
		}
		run, err := b.scaleOnce(ctx, conn, cl, c, origin, i, bl)
		if run != nil {
			res.Runs = append(res.Runs, run)
		}
		if err != nil {
			return res, fmt.Errorf("scale %s: %w", c, err)
		}
		logf("scale %s: capture %.0f changes/s, sinks %.0f changes/s (%.1f sink CPU s/M, %.1f NATS CPU s/M), sink CPU shares %s",
			c, run.Capture.PerSecond, run.Sink.PerSecond, run.Sink.CPUSecPerMChgs, run.SinkNATSCPUPerM, run.shares())
	}
	return res, nil
}

// scaleOnce fills a fresh stream from a copy of the slot with
// bin/rosetta capture, then drains it with c.Instances sink processes.
func (b *bench) scaleOnce(ctx context.Context, conn *pgx.Conn, cl *natsProcs, c scaleConfig, origin string, i int, bl *backlog) (*scaleRun, error) {
	n := int64(len(bl.ops))
	run := &scaleRun{Config: c}
	name := fmt.Sprintf("scale_%d", i)
	slot := name + "_slot"
	if err := copySlot(ctx, conn, origin, slot); err != nil {
		return run, err
	}
	defer dropSlot(context.Background(), conn, slot)
	capRun := b.newRun(name, "capture", "postgres", slot, "bench_scale")
	capRun.natsURL, capRun.partitions = cl.url(), c.Partitions
	capRun.env = []string{"ROSETTA_STREAM_REPLICAS=" + strconv.Itoa(c.Replicas)}
	if err := capRun.configure(ctx); err != nil {
		return run, err
	}
	defer func() {
		b.pg.dropDB(context.Background(), capRun.dstDB)
		b.pg.dropDB(context.Background(), capRun.cfgDB)
		os.RemoveAll(capRun.dir)
	}()
	js, closeNC, err := capRun.connectNATS(ctx)
	if err != nil {
		return run, err
	}
	defer closeNC()
	// The next run's source has the same id, so the same stream name.
	defer js.DeleteStream(context.Background(), streamName(capRun.srcID))

	natsCPU := cl.cpu()
	if err := capRun.start(""); err != nil {
		return run, err
	}
	var activeAt time.Time
	wctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	err = waitFor(wctx, 20*time.Millisecond, func() (bool, error) {
		if capRun.exited() {
			return false, fmt.Errorf("rosetta capture exited: %v\n%s", capRun.waitErr, capRun.logTail())
		}
		if activeAt.IsZero() {
			active, _, err := capRun.slotState(ctx, conn)
			if err != nil || !active {
				return false, err
			}
			activeAt = time.Now()
		}
		ok, err := sentinelStored(ctx, js, capRun.srcID)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return false, nil
		}
		return ok, err
	})
	if err != nil {
		capRun.stop()
		return run, fmt.Errorf("capture: %w", err)
	}
	run.Capture = newMeasure(n, time.Since(activeAt))
	run.CaptureNATSCPUPerM = perMillion(cl.cpu()-natsCPU, n)
	run.Capture.setUsage(capRun.stop(), capRun.peakKB)

	dconn, err := b.pg.connect(ctx, capRun.dstDB)
	if err != nil {
		return run, err
	}
	defer dconn.Close(context.Background())
	dst, err := b.sampleBackends(ctx, "src", destinationQuery, capRun.dstDB, int(dconn.PgConn().PID()))
	if err != nil {
		return run, err
	}
	defer dst.total()
	natsCPU = cl.cpu()
	sinks := make([]*rosettaRun, c.Instances)
	for k := range sinks {
		s := b.newRun(name, "sink", "postgres", slot, "bench_scale")
		s.dir = filepath.Join(capRun.dir, fmt.Sprintf("sink-%d", k+1))
		s.srcID, s.natsURL, s.partitions = capRun.srcID, capRun.natsURL, c.Partitions
		s.env = capRun.env
		if err := os.MkdirAll(s.dir, 0o755); err != nil {
			return run, err
		}
		if err := s.start(""); err != nil {
			return run, err
		}
		defer s.stop()
		sinks[k] = s
	}
	var first time.Time
	err = waitFor(wctx, 20*time.Millisecond, func() (bool, error) {
		for _, s := range sinks {
			if s.exited() {
				return false, fmt.Errorf("rosetta sink exited: %v\n%s", s.waitErr, s.logTail())
			}
		}
		if first.IsZero() {
			ok, err := anyRow(ctx, dconn, "bench_scale")
			if err != nil || !ok {
				return false, err
			}
			first = time.Now()
		}
		if ok, err := rowVisible(ctx, dconn, "bench_scale", -1); err != nil || !ok {
			return false, err
		}
		return consumerDrained(ctx, js, capRun.srcID)
	})
	if err != nil {
		return run, fmt.Errorf("sinks: %w", err)
	}
	run.Sink = newMeasure(n, time.Since(first))
	run.SinkNATSCPUPerM = perMillion(cl.cpu()-natsCPU, n)
	note, err := verifyPG(ctx, dconn, "bench_scale", bl)
	if err != nil {
		return run, err
	}
	dcpu, _ := dst.total()
	run.Sink.DestinationCPUPerM = perMillion(dcpu, n)
	var cpu time.Duration
	var peak int64
	each := make([]time.Duration, len(sinks))
	for k, s := range sinks {
		if ru := s.stop(); ru != nil {
			each[k] = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			cpu += each[k]
		}
		peak = max(peak, s.peakKB)
	}
	for _, v := range each {
		if cpu > 0 {
			run.SinkCPUShares = append(run.SinkCPUShares, float64(v)/float64(cpu))
		}
	}
	run.Sink.setUsage(&syscall.Rusage{Utime: syscall.NsecToTimeval(int64(cpu))}, peak)
	run.Note = "sinks from the first row visible; " + note
	return run, nil
}

// shares formats the sinks' CPU shares as "0.52/0.48".
func (r *scaleRun) shares() string {
	var parts []string
	for _, v := range r.SinkCPUShares {
		parts = append(parts, fmt.Sprintf("%.2f", v))
	}
	return strings.Join(parts, "/")
}

// natsProcs is one nats-server process, or a JetStream cluster of them on
// loopback.
type natsProcs struct {
	nodes []*exec.Cmd
	ports []int
}

const natsNodeConf = `server_name: n%d
listen: 127.0.0.1:%d
jetstream {
  store_dir: %q
}
`

const natsRouteConf = `cluster {
  name: rosetta-bench
  listen: 127.0.0.1:%d
  routes: [%s]
}
`

// startNATSProcs starts size nats-server processes (a cluster when size >
// 1) with the server's default fsync (every 2 minutes, as the deploy
// config), and waits until JetStream answers.
func startNATSProcs(ctx context.Context, bin, dir string, size int) (*natsProcs, error) {
	p := &natsProcs{}
	routePorts := make([]int, size)
	var routes []string
	for i := range size {
		cp, err := freePort()
		if err != nil {
			return nil, err
		}
		rp, err := freePort()
		if err != nil {
			return nil, err
		}
		p.ports = append(p.ports, cp)
		routePorts[i] = rp
		routes = append(routes, "nats-route://127.0.0.1:"+strconv.Itoa(rp))
	}
	for i := range size {
		ndir := filepath.Join(dir, fmt.Sprintf("n%d", i+1))
		if err := os.MkdirAll(ndir, 0o755); err != nil {
			return nil, err
		}
		conf := fmt.Sprintf(natsNodeConf, i+1, p.ports[i], filepath.Join(ndir, "js"))
		if size > 1 {
			conf += fmt.Sprintf(natsRouteConf, routePorts[i], strings.Join(routes, ", "))
		}
		path := filepath.Join(ndir, "nats-server.conf")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			return nil, err
		}
		logFile, err := os.Create(filepath.Join(ndir, "nats-server.log"))
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(bin, "-c", path)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		if err := cmd.Start(); err != nil {
			p.stop()
			return nil, fmt.Errorf("start nats-server: %w", err)
		}
		p.nodes = append(p.nodes, cmd)
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	err := waitFor(wctx, 100*time.Millisecond, func() (bool, error) {
		for _, port := range p.ports {
			c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
			if err != nil {
				return false, nil
			}
			c.Close()
		}
		cctx, ccancel := context.WithTimeout(wctx, 5*time.Second)
		defer ccancel()
		nc, js, err := natsx.Connect(cctx, p.url(), "rosetta-bench", nil)
		if err != nil {
			return false, nil
		}
		defer nc.Close()
		_, err = js.AccountInfo(cctx)
		return err == nil, nil
	})
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("nats-server (%d nodes) not ready: %w", size, err)
	}
	return p, nil
}

func (p *natsProcs) url() string {
	urls := make([]string, len(p.ports))
	for i, port := range p.ports {
		urls[i] = "nats://127.0.0.1:" + strconv.Itoa(port)
	}
	return strings.Join(urls, ",")
}

// cpu is the processes' CPU time so far.
func (p *natsProcs) cpu() time.Duration {
	var sum time.Duration
	for _, c := range p.nodes {
		// Every thread's: schedstat counts the main thread only.
		if v, ok := statCPU(c.Process.Pid); ok {
			sum += v
		}
	}
	return sum
}

func (p *natsProcs) stop() {
	if p == nil {
		return
	}
	for _, c := range p.nodes {
		_ = c.Process.Signal(syscall.SIGTERM)
	}
	for _, c := range p.nodes {
		done := make(chan struct{})
		go func() { c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = c.Process.Kill()
			<-done
		}
	}
}

// print writes the scaling table: rates relative to the first run of the
// same NATS setup (one node P=1 one sink; the cluster's R1), CPU per
// million changes of the sinks together, the destination's backends and
// the nats-server processes.
func (s *scaleResult) print(out io.Writer) {
	if s == nil || len(s.Runs) == 0 {
		return
	}
	fmt.Fprintf(out, "\nscaling out: %s backlog of %d changes into PostgreSQL; capture into external nats-server processes, then the sinks alone (÷base: the first run on the same NATS setup)\n", s.Workload.Name, s.Workload.Changes)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "nats nodes\treplicas\tpartitions\tsinks\tsink CPU shares\tcapture/s\t(÷base)\tcapture CPU s/M\tNATS CPU s/M\tsinks/s\t(÷base)\tsinks CPU s/M\tdest CPU s/M\tNATS CPU s/M\t")
	base := map[int]*scaleRun{}
	for _, r := range s.Runs {
		c := r.Config
		if base[c.Nodes] == nil {
			base[c.Nodes] = r
		}
		b := base[c.Nodes]
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%s\t%.0f\t%s\t%.1f\t%.1f\t%.0f\t%s\t%.1f\t%.1f\t%.1f\t\n", c.Nodes, c.Replicas, c.Partitions, c.Instances, r.shares(),
			r.Capture.PerSecond, ratio(&r.Capture, &b.Capture), r.Capture.CPUSecPerMChgs, r.CaptureNATSCPUPerM,
			r.Sink.PerSecond, ratio(&r.Sink, &b.Sink), r.Sink.CPUSecPerMChgs, r.Sink.DestinationCPUPerM, r.SinkNATSCPUPerM)
	}
	tw.Flush()
}
