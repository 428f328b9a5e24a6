package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

type results struct {
	Started   time.Time         `json:"started"`
	Finished  time.Time         `json:"finished"`
	Machine   machine           `json:"machine"`
	Changes   int               `json:"changes_per_backlog"`
	Workloads []*workloadResult `json:"workloads"`
	Snapshot  *snapshotResult   `json:"snapshot,omitempty"`
	Scale     *scaleResult      `json:"scale,omitempty"`
	Latency   *latencyResult    `json:"latency,omitempty"`
	Console   *consoleResult    `json:"console,omitempty"`
	Targets   []target          `json:"targets"`
	Error     string            `json:"error,omitempty"`
}

type machine struct {
	CPUs     int    `json:"cpus"`
	CPUModel string `json:"cpu_model"`
	MemoryMB int64  `json:"memory_mb"`
	Kernel   string `json:"kernel"`
	Go       string `json:"go"`
	Postgres string `json:"postgres"`
	Load     string `json:"load_at_start"`
}

type workloadResult struct {
	Workload       workload `json:"workload"`
	BacklogSeconds float64  `json:"backlog_build_seconds"`
	MessageBytes   int      `json:"message_bytes,omitempty"`
	// Messages is how many messages capture stored for the backlog's
	// changes (change batches: fewer than changes).
	Messages int64 `json:"messages,omitempty"`
	// Ceilings.
	RecvLogical  *measure `json:"pg_recvlogical,omitempty"`
	Subscription *measure `json:"pg_logical_replication,omitempty"`
	DecodeLoop   *measure `json:"pglogrepl_loop,omitempty"`
	JetStream    *measure `json:"jetstream_publish,omitempty"`
	Copy         *measure `json:"copy_binary,omitempty"`
	StagedUpsert *measure `json:"copy_staged_upsert,omitempty"`
	// Rosetta.
	Capture      *measure `json:"rosetta_capture_alone,omitempty"`
	SinkPostgres *measure `json:"rosetta_sink_alone_postgres,omitempty"`
	E2EPostgres  *measure `json:"rosetta_e2e_postgres,omitempty"`
	E2EDuckDB    *measure `json:"rosetta_e2e_duckdb,omitempty"`
	// Budget is the CPU per change of the parts and the rate it allows.
	Budget *cpuBudget `json:"cpu_budget,omitempty"`
}

type target struct {
	What   string  `json:"what"`
	Value  float64 `json:"value"`
	Target string  `json:"target"`
	Met    bool    `json:"met"`
	// Reachable says what the machine allows: the CPU-bound ceiling of
	// the figure as the same ratio (cpuBudget), when there is one.
	Reachable string `json:"cpu_bound_ceiling,omitempty"`
}

func newResults(changes int) *results {
	r := &results{Started: time.Now().UTC(), Changes: changes}
	r.Machine.CPUs = runtime.NumCPU()
	r.Machine.Go = runtime.Version()
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(l, "model name") {
				r.Machine.CPUModel = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		fmt.Sscanf(strings.SplitN(string(data), "\n", 2)[0], "MemTotal: %d kB", &kb)
		r.Machine.MemoryMB = kb / 1024
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		r.Machine.Kernel = strings.TrimSpace(string(data))
	}
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		r.Machine.Load = strings.TrimSpace(string(data))
	}
	return r
}

func ratio(a, b *measure) string {
	if a == nil || b == nil || b.PerSecond == 0 {
		return ""
	}
	return fmt.Sprintf("%.2f", a.PerSecond/b.PerSecond)
}

func rate(m *measure) string {
	if m == nil {
		return "-"
	}
	return fmt.Sprintf("%.0f", m.PerSecond)
}

func (r *results) evaluate() {
	r.Targets = nil
	add := func(what string, v float64, tgt string, met bool) {
		r.Targets = append(r.Targets, target{What: what, Value: v, Target: tgt, Met: met})
	}
	// reachable notes the CPU-bound ceiling beside the last target added.
	reachable := func(ceiling, recv float64) {
		if ceiling > 0 && recv > 0 {
			r.Targets[len(r.Targets)-1].Reachable = fmt.Sprintf("CPU-bound ceiling on %d cores: %.0f changes/s = %.2f x pg_recvlogical",
				r.Machine.CPUs, ceiling, ceiling/recv)
		}
	}
	for _, w := range r.Workloads {
		if w.RecvLogical == nil {
			continue
		}
		w.computeBudget(r.Machine.CPUs)
		rl := w.RecvLogical.PerSecond
		if w.Workload.Mix == "insert" && w.E2EPostgres != nil {
			v := w.E2EPostgres.PerSecond / rl
			add(w.Workload.Name+": end to end into PostgreSQL / pg_recvlogical", v, ">= 0.5", v >= 0.5)
			if w.Budget != nil {
				reachable(w.Budget.E2ECeiling, rl)
			}
		}
		if w.E2EPostgres != nil && w.Subscription != nil {
			v := w.E2EPostgres.PerSecond / w.Subscription.PerSecond
			add(w.Workload.Name+": end to end into PostgreSQL / PostgreSQL logical replication", v, ">= 1 (stretch)", v >= 1)
		}
		if w.Workload.Mix == "insert" && w.Capture != nil {
			v := w.Capture.PerSecond / rl
			add(w.Workload.Name+": capture alone / pg_recvlogical", v, ">= 0.8", v >= 0.8)
			if w.Budget != nil {
				reachable(w.Budget.CaptureCeiling, rl)
			}
		}
		if w.SinkPostgres != nil && w.StagedUpsert != nil {
			v := w.SinkPostgres.PerSecond / w.StagedUpsert.PerSecond
			add(w.Workload.Name+": sink apply / staged upsert", v, ">= 0.7", v >= 0.7)
		}
		for _, e := range []struct {
			dest string
			m    *measure
		}{{"PostgreSQL", w.E2EPostgres}, {"DuckDB", w.E2EDuckDB}} {
			dest, m := e.dest, e.m
			limit := 256.0
			if dest == "DuckDB" {
				limit = 384 // DuckDB's own buffers are in the process
			}
			if m != nil && m.PeakRSSMB > 0 {
				add(w.Workload.Name+": rosetta dev peak RSS MB (into "+dest+")", m.PeakRSSMB, fmt.Sprintf("<= %.0f", limit), m.PeakRSSMB <= limit)
			}
		}
	}
	if s := r.Snapshot; s != nil {
		if s.Postgres != nil && s.CopyPipe != nil {
			v := s.Postgres.PerSecond / s.CopyPipe.PerSecond
			add("snapshot into PostgreSQL / COPY pipe", v, ">= 0.25", v >= 0.25)
		}
		if s.DuckDB != nil && s.AppenderPipe != nil {
			v := s.DuckDB.PerSecond / s.AppenderPipe.PerSecond
			add("snapshot into DuckDB / appender pipe", v, ">= 0.25", v >= 0.25)
		}
	}
	if r.Latency != nil {
		for _, p := range r.Latency.Phases {
			if p.Method != "server" {
				continue // the client method's own client and poller share the cores
			}
			if p.OfferedPerSecond == 2000 && p.CPUMicrosPerTx > 0 {
				add("rosetta dev CPU µs per transaction at 2k/s", p.CPUMicrosPerTx, "<= 60", p.CPUMicrosPerTx <= 60)
			}
			switch p.OfferedPerSecond {
			case 5000:
				add("p99 latency ms at 5k changes/s", p.EndToEnd.P99, "<= 50", p.EndToEnd.P99 <= 50)
			case 10000:
				add("p99 latency ms at 10k changes/s", p.EndToEnd.P99, "<= 100", p.EndToEnd.P99 <= 100)
			}
		}
		if r.Latency.PeakRSSMB > 0 {
			add("latency run: rosetta dev peak RSS MB", r.Latency.PeakRSSMB, "<= 256", r.Latency.PeakRSSMB <= 256)
		}
	}
	if c := r.Console; c != nil {
		add(fmt.Sprintf("console overview first render ms, median (%d paused)", c.Pipelines), c.MedianMS,
			fmt.Sprintf("<= %d", consoleTargetMS), c.MedianMS <= consoleTargetMS)
	}
}

func (r *results) print(out io.Writer) {
	r.evaluate()
	fmt.Fprintf(out, "\nrosetta bench — %d CPUs (%s), %d MB, load at start %s\n", r.Machine.CPUs, r.Machine.CPUModel, r.Machine.MemoryMB, r.Machine.Load)
	// -workloads= (make bench-console) runs none: no empty tables.
	if len(r.Workloads) > 0 {
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "workload\tchanges\trecvlogical/s\tpg sub/s\tpglogrepl/s\tjetstream/s\tcopy rows/s\tstaged/s\tcapture/s\t(÷recv)\tsink pg/s\t(÷staged)\te2e pg/s\t(÷recv)\te2e duck/s\t(÷recv)\tdev RSS MB\tdev CPU s/M\t")
		for _, w := range r.Workloads {
			var rss, cpu string
			if w.E2EPostgres != nil {
				rss = fmt.Sprintf("%.0f", w.E2EPostgres.PeakRSSMB)
				cpu = fmt.Sprintf("%.1f", w.E2EPostgres.CPUSecPerMChgs)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", w.Workload.Name, w.Workload.Changes,
				rate(w.RecvLogical), rate(w.Subscription), rate(w.DecodeLoop), rate(w.JetStream), rate(w.Copy), rate(w.StagedUpsert),
				rate(w.Capture), ratio(w.Capture, w.RecvLogical), rate(w.SinkPostgres), ratio(w.SinkPostgres, w.StagedUpsert),
				rate(w.E2EPostgres), ratio(w.E2EPostgres, w.RecvLogical), rate(w.E2EDuckDB), ratio(w.E2EDuckDB, w.RecvLogical), rss, cpu)
		}
		tw.Flush()
		r.printCPU(out)
	}
	if s := r.Snapshot; s != nil {
		fmt.Fprintf(out, "\ninitial snapshot of %d rows (rows/s; Rosetta from process start)\n", s.Rows)
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "destination\tceiling\tceiling/s\trosetta/s\t(÷ceiling)\tdev RSS MB\tdev CPU s/M\t")
		for _, e := range []struct {
			dest, ceil string
			c, m       *measure
		}{{"PostgreSQL", "COPY pipe", s.CopyPipe, s.Postgres}, {"DuckDB", "appender pipe", s.AppenderPipe, s.DuckDB}} {
			if e.m == nil {
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.0f\t%.1f\t\n", e.dest, e.ceil, rate(e.c), rate(e.m), ratio(e.m, e.c), e.m.PeakRSSMB, e.m.CPUSecPerMChgs)
		}
		tw.Flush()
	}
	r.Scale.print(out)
	if l := r.Latency; l != nil {
		fmt.Fprintln(out, "\nlatency (ms; scheduled commit → destination, corrected for coordinated omission; server: generated in PostgreSQL, stamped by the destination; client: client connections and a poller, with commit → JetStream ack)")
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "method\toffered/s\tachieved/s\tp50\tp95\tp99\tmax\tnot seen\tdev CPU µs/tx\tack p50\tack p99\t")
		for _, p := range l.Phases {
			fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.1f\t%.1f\t%.1f\t%.1f\t%d\t%.0f\t%.1f\t%.1f\t\n", p.Method, p.OfferedPerSecond, p.AchievedPerSecond,
				p.EndToEnd.P50, p.EndToEnd.P95, p.EndToEnd.P99, p.EndToEnd.Max, p.NotVisible, p.CPUMicrosPerTx, p.Ack.P50, p.Ack.P99)
		}
		tw.Flush()
	}
	if c := r.Console; c != nil {
		fmt.Fprintln(out, "\nconsole (Chromium on loopback; navigation start → every pipeline's row on the overview, fresh context each run)")
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "page\tpipelines\truns\tmedian ms\tmax ms\ttarget ms\t")
		fmt.Fprintf(tw, "overview first render\t%d\t%d\t%.0f\t%.0f\t%d\t\n", c.Pipelines, len(c.RunsMS), c.MedianMS, c.MaxMS, consoleTargetMS)
		tw.Flush()
	}
	if len(r.Targets) > 0 {
		fmt.Fprintln(out, "\ntargets")
		for _, t := range r.Targets {
			mark := "MET"
			if !t.Met {
				mark = "NOT MET"
			}
			fmt.Fprintf(out, "  %-60s %8.2f  %-7s %-7s %s\n", t.What, t.Value, t.Target, mark, t.Reachable)
		}
	}
	if r.Error != "" {
		fmt.Fprintln(out, "\nERROR:", r.Error)
	}
}

// printCPU prints the capture rates (confirmed and acknowledged) and the
// CPU budget of every workload.
func (r *results) printCPU(out io.Writer) {
	fmt.Fprintln(out, "\ncapture alone: rate to the slot confirmed (includes one confirm delay, fsync interval + 1 s) and to every publish acknowledged (the stream's last sequence reaching the change count)")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tconfirmed/s\t(÷recv)\tacknowledged/s\t(÷recv)\t")
	for _, w := range r.Workloads {
		if c := w.Capture; c != nil && c.AckedPerSecond > 0 {
			acked := &measure{PerSecond: c.AckedPerSecond}
			fmt.Fprintf(tw, "%s\t%.0f\t%s\t%.0f\t%s\t\n", w.Workload.Name, c.PerSecond, ratio(c, w.RecvLogical), c.AckedPerSecond, ratio(acked, w.RecvLogical))
		}
	}
	tw.Flush()
	fmt.Fprintf(out, "\nCPU budget (CPU seconds per million changes: each part's least in any run that measured it; ceiling = %d cores / sum of the parts; then what the end-to-end run into PostgreSQL used)\n", r.Machine.CPUs)
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\twalsender\tjetstream\tdest backend\tcapture ceiling/s\t(÷recv)\te2e ceiling/s\t(÷recv)\tcapture run: capture\twalsender\te2e run: dev\twalsender\tdest\tbound/s\tNATS share of dev\t")
	for _, w := range r.Workloads {
		bu := w.Budget
		if bu == nil {
			continue
		}
		rl := w.RecvLogical.PerSecond
		div := func(v float64) string {
			if v <= 0 || rl <= 0 {
				return ""
			}
			return fmt.Sprintf("%.2f", v/rl)
		}
		share := ""
		if bu.NATSShare > 0 {
			share = fmt.Sprintf("%.0f %%", bu.NATSShare*100)
		}
		var capCPU, capWS float64
		if c := w.Capture; c != nil {
			capCPU, capWS = c.CPUSecPerMChgs, c.WalsenderCPUPerM
		}
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%.1f\t%.0f\t%s\t%.0f\t%s\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.0f\t%s\t\n", w.Workload.Name,
			bu.Walsender, bu.JetStream, bu.Destination, bu.CaptureCeiling, div(bu.CaptureCeiling), bu.E2ECeiling, div(bu.E2ECeiling),
			capCPU, capWS, bu.E2EDev, bu.E2EWalsender, bu.E2EDestination, bu.E2EActualBound, share)
	}
	tw.Flush()
}
