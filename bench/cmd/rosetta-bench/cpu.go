package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// The CPU budget (docs/performance.md, "CPU budget"): how much CPU each
// part of the pipeline needs per change at the least, so the reader can
// tell whether a target is reachable on this machine at all.

// procCPU is the CPU time process pid has used so far: the first field of
// /proc/<pid>/schedstat (nanoseconds), or utime + stime of /proc/<pid>/stat
// (clock ticks, 10 ms) where schedstat is missing. ok is false once the
// process is gone.
func procCPU(pid int) (time.Duration, bool) {
	if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid)); err == nil {
		if f := strings.Fields(string(data)); len(f) > 0 {
			if ns, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				return time.Duration(ns), true
			}
		}
	}
	return statCPU(pid)
}

// statCPU is utime + stime of /proc/<pid>/stat: every thread of the
// process, in clock ticks (10 ms). A multi-threaded process (rosetta) is
// measured with it; schedstat counts the main thread only.
func statCPU(pid int) (time.Duration, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// The command name (field 2) may hold spaces; fields count from the
	// closing parenthesis. utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	return time.Duration(ut+st) * tick, true
}

// selfCPU is this process's user + system time (all threads).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuSampler follows the CPU time of PostgreSQL backends that come and go
// during a run (a slot's walsender, a destination's connections): it asks
// PostgreSQL which pids to follow every 200 ms, over a connection of its
// own, and reads their CPU time from /proc every 20 ms. A backend's CPU
// after its last sample (at most 20 ms of it) is not counted: backends
// that outlive the run (the usual case: the sampler stops before the
// Rosetta process) lose nothing.
type cpuSampler struct {
	mu   sync.Mutex
	cpu  map[int]time.Duration // last CPU time seen per pid
	base map[int]time.Duration // CPU time at the first sample, for pids that existed at start
	stop chan struct{}
	done chan struct{}
}

// sampleBackends starts a sampler of the backends query returns (one
// column of pids, args bound) in database db. Backends present at the
// first sample count from then on, not from their start.
func (b *bench) sampleBackends(ctx context.Context, db, query string, args ...any) (*cpuSampler, error) {
	conn, err := b.pg.connect(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("cpu sampler connection: %w", err)
	}
	s := &cpuSampler{cpu: map[int]time.Duration{}, base: map[int]time.Duration{},
		stop: make(chan struct{}), done: make(chan struct{})}
	first := true
	refresh := func() {
		pids, err := queryPids(ctx, conn, query, args...)
		if err != nil {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, pid := range pids {
			if _, ok := s.cpu[pid]; ok {
				continue
			}
			v, ok := procCPU(pid)
			if !ok {
				continue
			}
			s.cpu[pid] = v
			if first {
				s.base[pid] = v
			}
		}
		first = false
	}
	refresh()
	go func() {
		defer close(s.done)
		defer conn.Close(context.Background())
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for i := 1; ; i++ {
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
			// New backends are looked for every 200 ms, every 20 ms
			// while there is none yet (a walsender that lives for a
			// second must not be missed).
			if i%10 == 0 || s.empty() {
				refresh()
			}
			s.read()
		}
	}()
	return s, nil
}

func (s *cpuSampler) empty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.cpu) == 0
}

func (s *cpuSampler) read() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for pid := range s.cpu {
		if v, ok := procCPU(pid); ok {
			s.cpu[pid] = max(s.cpu[pid], v)
		}
	}
}

// total stops the sampler and returns the CPU time its backends used
// while it ran, and how many backends it followed.
func (s *cpuSampler) total() (time.Duration, int) {
	if s == nil {
		return 0, 0
	}
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	s.read()
	s.mu.Lock()
	defer s.mu.Unlock()
	var sum time.Duration
	for pid, v := range s.cpu {
		sum += v - s.base[pid]
	}
	return sum, len(s.cpu)
}

func queryPids(ctx context.Context, conn *pgx.Conn, query string, args ...any) ([]int, error) {
	rows, err := conn.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int])
}

// walsenderQuery finds the walsender streaming from slot $1.
const walsenderQuery = `SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`

// destinationQuery finds the backends connected to database $1 other than
// the bench's own ($2).
const destinationQuery = `SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> $2 AND backend_type = 'client backend'`

// perMillion is CPU seconds per million of n changes.
func perMillion(d time.Duration, n int64) float64 {
	if n <= 0 {
		return 0
	}
	return d.Seconds() / float64(n) * 1e6
}

// cpuBudget is the CPU a workload's parts need per change at the least,
// each measured alone in the same run, and the rate those minimums allow on
// the machine's cores if every core did nothing else.
type cpuBudget struct {
	Cores int `json:"cores"`
	// The parts' least CPU seconds per million changes (computeBudget).
	Walsender   float64 `json:"walsender"`
	JetStream   float64 `json:"jetstream_publish_ceiling_process"`
	Destination float64 `json:"destination_backends"`
	// Ceilings in changes/s: cores / (sum of the parts' minimum CPU per
	// change). Capture needs the walsender and JetStream; end to end also
	// the destination's backend.
	CaptureCeiling float64 `json:"capture_cpu_bound_ceiling_per_second"`
	E2ECeiling     float64 `json:"e2e_cpu_bound_ceiling_per_second"`
	// The end-to-end run into PostgreSQL: what its processes used per
	// million changes, and the rate that CPU allows on these cores.
	E2EDev         float64 `json:"e2e_rosetta_dev"`
	E2EWalsender   float64 `json:"e2e_walsender"`
	E2EDestination float64 `json:"e2e_destination_backends"`
	E2EActualBound float64 `json:"e2e_cpu_bound_at_measured_cost_per_second"`
	// NATSShare is the share of rosetta dev's CPU profile (end to end into
	// PostgreSQL) in the embedded NATS server's code; only with -pprof.
	NATSShare float64 `json:"e2e_embedded_nats_share_of_dev_cpu,omitempty"`
}

// computeBudget fills w.Budget from the workload's measures. Each part's
// minimum is the least CPU per change it used in any run that measured it:
// the walsender in pg_recvlogical's, capture's and the end-to-end runs;
// the destination's backends in the staged-upsert ceiling's and the end
// to end run into PostgreSQL; JetStream in its publish ceiling.
func (w *workloadResult) computeBudget(cores int) {
	if w.RecvLogical == nil || w.JetStream == nil || w.RecvLogical.WalsenderCPUPerM == 0 {
		return
	}
	least := func(ms ...*measure) func(func(*measure) float64) float64 {
		return func(f func(*measure) float64) float64 {
			v := 0.0
			for _, m := range ms {
				if m == nil || f(m) <= 0 {
					continue
				}
				if v == 0 || f(m) < v {
					v = f(m)
				}
			}
			return v
		}
	}
	bu := &cpuBudget{Cores: cores, JetStream: w.JetStream.CPUSecPerMChgs}
	bu.Walsender = least(w.RecvLogical, w.Capture, w.E2EPostgres, w.E2EDuckDB)(func(m *measure) float64 { return m.WalsenderCPUPerM })
	bu.Destination = least(w.StagedUpsert, w.E2EPostgres)(func(m *measure) float64 { return m.DestinationCPUPerM })
	ceiling := func(secPerM ...float64) float64 {
		sum := 0.0
		for _, v := range secPerM {
			sum += v
		}
		if sum <= 0 {
			return 0
		}
		return float64(cores) * 1e6 / sum
	}
	bu.CaptureCeiling = ceiling(bu.Walsender, bu.JetStream)
	if bu.Destination > 0 {
		bu.E2ECeiling = ceiling(bu.Walsender, bu.JetStream, bu.Destination)
	}
	if e := w.E2EPostgres; e != nil {
		bu.E2EDev, bu.E2EWalsender, bu.E2EDestination = e.CPUSecPerMChgs, e.WalsenderCPUPerM, e.DestinationCPUPerM
		bu.E2EActualBound = ceiling(bu.E2EDev, bu.E2EWalsender, bu.E2EDestination)
		bu.NATSShare = e.NATSShare
	}
	w.Budget = bu
}

// focusShare is the share of a CPU profile's samples with a frame whose
// function matches focus (a regexp): with every node shown, the top
// listing's "Showing nodes accounting for X, P% of T total" sums the
// focused samples. 0 when it cannot tell.
func focusShare(ctx context.Context, binary, profile, focus string) float64 {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=1000000", "-nodefraction=0",
		"-focus="+focus, binary, profile).Output()
	if err != nil {
		return 0
	}
	m := regexp.MustCompile(`Showing nodes accounting for [^,]+, ([0-9.]+)% of`).FindSubmatch(out)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		return 0
	}
	return v / 100
}
