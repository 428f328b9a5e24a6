package faults

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/natsx"
)

// (i) The whole deployment on a three-node JetStream cluster of real
// nats-server processes, every service given all three URLs and the
// stream three replicas: two captures, three sinks on the one destination
// and the API, under a continuous workload. In turn, each followed by its
// recovery: the sink holding the partitions is SIGKILLed and restarted,
// the stream leader's node is SIGKILLed and restarted, the active capture
// is SIGKILLed and restarted; then every node is restarted in turn (SIGTERM), each once
// the stream and its consumers have a leader and current replicas again.
// The destination must end equal to the source and the stream must hold
// every change once (an audit consumer created before the first change
// keeps them all). How long each takeover took is logged.
//
// The source has four partitions: four consumers, each pinned to one sink
// at a time, so a killed sink's partitions move to the others.
func testNATSCluster(t *testing.T) {
	const replicas = 3
	cl := startNATSCluster(t, replicas)
	waitClusterMeta(t, cl.clientURLs())
	w := newWorld(t, worldOptions{natsURL: cl.clientURLs(), replicas: replicas, partitions: 4,
		env: []string{fmt.Sprintf("ROSETTA_STREAM_REPLICAS=%d", replicas)}})
	w.createSource()
	w.startAudit()
	w.createPipeline()
	captures := []*proc{w.capture, newProc(t, "capture-2", w.env, bins.rosetta, "capture")}
	sinks := []*proc{w.sink, newProc(t, "sink-2", w.env, bins.rosetta, "sink"), newProc(t, "sink-3", w.env, bins.rosetta, "sink")}
	captures[1].start()
	// About 1,000 changes/s: the three sinks apply 2,000-2,500/s to a
	// three-replica stream on a loaded two-core machine, and unpaced the
	// workload writes 5,000/s, so every recovery would be a growing backlog.
	wl := startWorkloadWith(t, &workload{dsn: w.srcPG.DSN(w.sourceDB), gap: 25 * time.Millisecond}, 31)
	// The first sink holds every partition (pinned at its first delivery)
	// until the others start; then it keeps its share, two of the four,
	// and the sink killed below is the one applying those.
	pins := w.waitPinned(nil, 30*time.Second)
	sinks[1].start()
	sinks[2].start()
	pins, kept := w.waitSpread(pins, 2, 60*time.Second)
	w.waitReplicasCurrent(replicas, 60*time.Second)
	m := newMarkers(t, w)
	var report []string
	logf := func(format string, args ...any) {
		s := fmt.Sprintf(format, args...)
		report = append(report, s)
		t.Log(s)
	}
	round := func(d time.Duration) time.Duration { return d.Round(10 * time.Millisecond) }
	// backlog logs what the sinks have yet to apply before a fault: a
	// recovery is only measured if it starts from a pipeline that keeps up.
	backlog := func(before string) {
		pending, ackPending := w.backlog()
		t.Logf("before %s: consumers %d pending, %d awaiting ack; %d transactions committed", before, pending, ackPending, wl.committed.Load())
	}

	// The first sink's partitions: the others are pinned instead once the
	// pinned TTL passes without its pull requests.
	time.Sleep(3 * time.Second)
	backlog("the sink's SIGKILL")
	seq := w.streamLastSeq()
	sinks[0].kill()
	killed := time.Now()
	w.waitPinned(pins, 60*time.Second, kept...)
	moved := time.Since(killed)
	_, caught := m.waitCaughtUp(killed, seq, 120*time.Second)
	logf("SIGKILL of %s of three, holding partitions %v: pinned to the others after %s, every change before it acked after %s (pinned TTL %s, ack wait %s)",
		sinks[0].name, kept, round(moved), round(caught), natsx.ConsumerPinnedTTL, natsx.ConsumerAckWait)
	sinks[0].start()

	// The node leading the stream: its followers elect a new leader.
	time.Sleep(3 * time.Second)
	backlog("the NATS node's SIGKILL")
	leader := cl.node(w.streamLeader())
	if leader == nil {
		t.Fatalf("no stream leader among the nodes (%q)", w.streamLeader())
	}
	seq = w.streamLastSeq()
	leader.kill()
	killed = time.Now()
	marker, caught := m.waitCaughtUp(killed, seq, 120*time.Second)
	logf("SIGKILL of NATS node %s (stream leader): a change written after it at the destination after %s, every change before it acked after %s (stream now led by %s)",
		leader.name, round(marker), round(caught), w.streamLeader())
	leader.restart()
	logf("NATS node %s restarted: stream and consumers current again after %s", leader.name, round(w.waitReplicasCurrent(replicas, 120*time.Second)))

	time.Sleep(3 * time.Second)
	backlog("the capture's SIGKILL")
	active := w.activeCapture(captures)
	if active == nil {
		t.Fatal("no capture process holds the slot's walsender connection")
	}
	walsender := w.slotPID()
	seq = w.streamLastSeq()
	active.kill()
	killed = time.Now()
	for {
		if pid := w.slotPID(); pid != 0 && pid != walsender {
			break
		}
		if time.Since(killed) > 60*time.Second {
			t.Fatalf("the standby capture did not take the slot over within 60s of SIGKILL of %s", active.name)
		}
		time.Sleep(20 * time.Millisecond)
	}
	slotTaken := time.Since(killed)
	checkTakeover(t, slotTaken)
	marker, caught = m.waitCaughtUp(killed, seq, 120*time.Second)
	logf("SIGKILL of the active capture (%s): slot active again after %s, a change written after it at the destination after %s, every change before it acked after %s",
		active.name, round(slotTaken), round(marker), round(caught))
	active.start()

	// Rolling restart: one node at a time, the next once the stream and its
	// consumers are whole again.
	for _, n := range cl.nodes {
		time.Sleep(2 * time.Second)
		backlog("the SIGTERM of NATS node " + n.name)
		stopped := time.Now()
		if inTime, st := n.stop(syscall.SIGTERM, 30*time.Second); !inTime {
			t.Errorf("NATS node %s did not exit within 30s of SIGTERM", n.name)
		} else if st != nil && !st.Success() {
			t.Logf("NATS node %s exited with %v after SIGTERM", n.name, st)
		}
		n.restart()
		w.waitReplicasCurrent(replicas, 120*time.Second)
		logf("rolling restart of NATS node %s: stream and consumers current again %s after its SIGTERM", n.name, round(time.Since(stopped)))
	}

	time.Sleep(3 * time.Second)
	finish(t, w, wl, 150*time.Second)
	ids := w.auditIDs()
	dups := 0
	for id, n := range ids {
		if n > 1 {
			if dups < 5 {
				t.Errorf("change %s is %d times in the stream", id, n)
			}
			dups++
		}
	}
	if dups > 0 {
		t.Errorf("%d changes are in the stream more than once", dups)
	} else {
		logf("stream holds %d distinct changes, none twice", len(ids))
	}
	t.Logf("takeovers on the three-node cluster:\n  %s", strings.Join(report, "\n  "))
}

// waitClusterMeta waits until the cluster at urls has a JetStream meta
// leader, so that the services find JetStream when they start.
func waitClusterMeta(t *testing.T, urls string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, js, err := natsx.Connect(ctx, urls, "faults-meta", nil)
	if err != nil {
		t.Fatalf("connect to the nats cluster: %v", err)
	}
	defer nc.Close()
	waitMeta(t, js, 60*time.Second)
}

// markers writes marker rows (in an id range the workload never uses) to
// the source and waits for them at the destination.
type markers struct {
	t        *testing.T
	w        *world
	src, dst *pgx.Conn
	next     int64
}

func newMarkers(t *testing.T, w *world) *markers {
	return &markers{t: t, w: w, src: w.srcPG.Connect(t, w.sourceDB), dst: w.dstPG.Connect(t, w.destDB), next: 9_000_000_000_000_000}
}

// waitCaughtUp writes a marker row on each partition and waits until the
// destination caught up with everything written before: the markers are
// there, and every partition's consumer acked every change the stream
// held at seq (so a killed sink's batch was redelivered and applied; the
// marker after it makes the ack floor pass seq). It returns the time since
// from until the markers arrived and until both held.
func (m *markers) waitCaughtUp(from time.Time, seq uint64, timeout time.Duration) (marker, caught time.Duration) {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var ids []int64
	for covered := map[int]bool{}; len(covered) < m.w.partitions; {
		m.next++
		p := contracts.Partition(contracts.Row{"id": json.RawMessage(strconv.FormatInt(m.next, 10))}, m.w.partitions)
		if !covered[p] {
			covered[p] = true
			ids = append(ids, m.next)
		}
	}
	if _, err := m.src.Exec(ctx, `INSERT INTO accounts SELECT id, 'marker', 0, 1, true, NULL FROM unnest($1::bigint[]) id`, ids); err != nil {
		m.t.Fatalf("write markers %v: %v", ids, err)
	}
	var n int
	var floors []uint64
	for {
		err := m.dst.QueryRow(ctx, `SELECT count(*) FROM accounts WHERE id = ANY($1)`, ids).Scan(&n)
		if err != nil {
			m.t.Fatalf("read markers %v at the destination: %v", ids, err)
		}
		if n == len(ids) && marker == 0 {
			marker = time.Since(from)
		}
		if n == len(ids) {
			floors = m.w.ackFloors()
			if len(floors) == m.w.partitions && slices.Min(floors) >= seq {
				return marker, time.Since(from)
			}
		}
		select {
		case <-ctx.Done():
			m.t.Fatalf("destination did not catch up within %s: %d of %d markers, consumers' ack floors %v, stream seq at the fault %d",
				timeout, n, len(ids), floors, seq)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ackFloors are the stream sequences every partition's consumer acked
// everything up to (nil on error).
func (w *world) ackFloors() []uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cons, err := natsx.PipelineConsumers(ctx, w.js, w.sourceID, w.pipelineID, w.destID, w.partitions)
	if err != nil {
		return nil
	}
	out := make([]uint64, len(cons))
	for i, c := range cons {
		ci, err := c.Info(ctx)
		if err != nil {
			return nil
		}
		out[i] = ci.AckFloor.Stream
	}
	return out
}

// backlog is what the pipeline's consumers have yet to deliver and to
// have acked.
func (w *world) backlog() (pending uint64, ackPending int) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cons, err := natsx.PipelineConsumers(ctx, w.js, w.sourceID, w.pipelineID, w.destID, w.partitions)
	if err != nil {
		return 0, -1
	}
	for _, c := range cons {
		if ci, err := c.Info(ctx); err == nil {
			pending += ci.NumPending
			ackPending += ci.NumAckPending
		}
	}
	return pending, ackPending
}

// activeCapture is the one of caps whose connection the slot's walsender
// serves (nil if none): the walsender's client port is a socket of that
// process (/proc/net/tcp maps the port to the socket's inode).
func (w *world) activeCapture(caps []*proc) *proc {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, w.srcPG.DSN(w.sourceDB))
	if err != nil {
		return nil
	}
	defer conn.Close(ctx)
	var port int
	if err := conn.QueryRow(ctx, `SELECT a.client_port FROM pg_replication_slots r
		JOIN pg_stat_activity a ON a.pid = r.active_pid
		WHERE r.database = $1 AND NOT r.temporary LIMIT 1`, w.sourceDB).Scan(&port); err != nil {
		return nil
	}
	inodes := socketInodes(port)
	for _, p := range caps {
		pid := p.pid()
		if pid == 0 {
			continue
		}
		fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
		for _, fd := range fds {
			if l, err := os.Readlink(fd); err == nil && inodes[l] {
				return p
			}
		}
	}
	return nil
}

// socketInodes are the "socket:[inode]" names of the TCP sockets whose
// local port is port.
func socketInodes(port int) map[string]bool {
	out := map[string]bool{}
	suffix := fmt.Sprintf(":%04X", port)
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) > 9 && strings.HasSuffix(fields[1], suffix) {
				out["socket:["+fields[9]+"]"] = true
			}
		}
		fh.Close()
	}
	return out
}

// pid is the running process's id, 0 when it is not running.
func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}
