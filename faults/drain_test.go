package faults

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
)

// drainState is what waitDrained looks at.
type drainState struct {
	target, confirmed uint64
	pending           map[string][2]uint64 // consumer: NumPending, NumAckPending
	dlqDepth          int64
	err               error
}

func (d drainState) String() string {
	return fmt.Sprintf("slot confirmed %s (target %s), consumers (pending, ack pending) %v, DLQ depth %d, last error %v",
		fmtLSN(d.confirmed), fmtLSN(d.target), d.pending, d.dlqDepth, d.err)
}

func (d drainState) drained() bool {
	if d.err != nil || d.confirmed < d.target || d.dlqDepth != 0 || len(d.pending) == 0 {
		return false
	}
	for _, p := range d.pending {
		if p[0] != 0 || p[1] != 0 {
			return false
		}
	}
	return true
}

// waitDrained waits until everything written before the call has gone all
// the way: the slot's confirmed_flush_lsn is at or past the source's WAL
// position when the call began (so JetStream holds every change), every
// pipeline consumer has nothing pending and nothing awaiting an ack (so
// every change was applied and committed), and the dead-letter queue is
// empty. Then it asserts that every destination table equals its source.
// The workload must have stopped.
func (w *world) waitDrained(timeout time.Duration) {
	w.t.Helper()
	w.drain(timeout)
	w.assertEqual()
}

// drain is waitDrained without the comparison.
func (w *world) drain(timeout time.Duration) {
	w.t.Helper()
	target, err := w.currentLSN()
	if err != nil {
		w.t.Fatalf("read source WAL position: %v", err)
	}
	start := time.Now()
	deadline := start.Add(timeout)
	var st drainState
	for {
		st = w.drainState(target)
		if st.drained() {
			break
		}
		if time.Now().After(deadline) {
			w.t.Errorf("not drained within %s: %s", timeout, st)
			w.assertEqual()
			w.t.FailNow()
		}
		time.Sleep(250 * time.Millisecond)
	}
	w.t.Logf("drained in %s: %s", time.Since(start).Round(100*time.Millisecond), st)
}

func (w *world) drainState(target uint64) drainState {
	st := drainState{target: target, pending: map[string][2]uint64{}}
	s, err := w.slot()
	if err != nil {
		st.err = fmt.Errorf("read slot: %w", err)
		return st
	}
	st.confirmed = s.confirmed
	if st.confirmed < target {
		return st
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream, err := w.js.Stream(ctx, contracts.StreamName(w.sourceID))
	if err != nil {
		st.err = fmt.Errorf("stream: %w", err)
		return st
	}
	lister := stream.ListConsumers(ctx)
	for ci := range lister.Info() {
		if ci.Name == auditConsumer {
			continue
		}
		st.pending[ci.Name] = [2]uint64{ci.NumPending, uint64(ci.NumAckPending)}
	}
	if err := lister.Err(); err != nil {
		st.err = fmt.Errorf("list consumers: %w", err)
		return st
	}
	var dlq struct {
		Enabled bool `json:"enabled"`
		Items   []struct {
			Depth int64 `json:"depth"`
		} `json:"items"`
	}
	if _, err := w.call("GET", fmt.Sprintf("/pipelines/%d/dlq", w.pipelineID), nil, &dlq); err != nil {
		st.err = err
		return st
	}
	if !dlq.Enabled {
		st.err = errors.New("dead-letter queue not enabled")
	}
	for _, it := range dlq.Items {
		st.dlqDepth += it.Depth
	}
	return st
}

// assertEqual fails the test unless every watched table holds the same
// rows at the destination as at the source: no key missing, none doubled,
// no stale value.
func (w *world) assertEqual() {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	src, err := pgx.Connect(ctx, w.srcPG.DSN(w.sourceDB))
	if err != nil {
		w.t.Fatalf("connect source: %v", err)
	}
	defer src.Close(ctx)
	dst, err := pgx.Connect(ctx, w.dstPG.DSN(w.destDB))
	if err != nil {
		w.t.Fatalf("connect destination: %v", err)
	}
	defer dst.Close(ctx)
	for _, table := range []string{"accounts", "lines", "docs"} {
		cols := watched[table]
		want, err := rowsOf(ctx, src, table, cols)
		if err != nil {
			w.t.Fatalf("read source %s: %v", table, err)
		}
		got, err := rowsOf(ctx, dst, table, cols)
		if err != nil {
			w.t.Fatalf("read destination %s: %v", table, err)
		}
		if d, first := diff(want, got); d != "" {
			w.t.Errorf("%s: destination differs from source (%d rows at source, %d at destination): %s", table, len(want), len(got), d)
			w.explain(ctx, dst, table, first)
		} else {
			w.t.Logf("%s: destination equals source (%d rows)", table, len(want))
		}
	}
}

// rowsOf returns each row of table as the text of cols, sorted.
func rowsOf(ctx context.Context, conn *pgx.Conn, table string, cols []string) ([]string, error) {
	exprs := make([]string, len(cols))
	for i, c := range cols {
		exprs[i] = "coalesce(" + pgx.Identifier{c}.Sanitize() + "::text, '∅')"
		if hashed[c] {
			exprs[i] = "coalesce(md5(" + pgx.Identifier{c}.Sanitize() + "::text), '∅')"
		}
	}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", pgx.Identifier{table}.Sanitize()).Scan(&exists); err != nil {
		return nil, err
	}
	if !exists {
		// A watched table no change was written to (docs, outside
		// SIGKILLSinkToastUnchanged) is never created at the
		// destination: it holds no rows.
		return nil, nil
	}
	rows, err := conn.Query(ctx, "SELECT concat_ws('|', "+strings.Join(exprs, ", ")+") FROM "+pgx.Identifier{table}.Sanitize())
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	slices.Sort(out)
	return out, err
}

// diff describes how got differs from want as multisets ("" if equal),
// and returns the first key column's value of one differing row.
func diff(want, got []string) (string, string) {
	count := map[string]int{}
	for _, r := range want {
		count[r]++
	}
	for _, r := range got {
		count[r]--
	}
	var missing, extra []string
	for r, n := range count {
		for ; n > 0; n-- {
			missing = append(missing, r)
		}
		for ; n < 0; n++ {
			extra = append(extra, r)
		}
	}
	if len(missing) == 0 && len(extra) == 0 {
		return "", ""
	}
	slices.Sort(missing)
	slices.Sort(extra)
	clip := func(s []string) string {
		if len(s) > 8 {
			return fmt.Sprintf("%q … %d more", s[:8], len(s)-8)
		}
		return fmt.Sprintf("%q", s)
	}
	first := append(missing, extra...)[0]
	first, _, _ = strings.Cut(first, "|")
	return fmt.Sprintf("missing or stale at destination %d %s; extra or stale at destination %d %s",
		len(missing), clip(missing), len(extra), clip(extra)), first
}

// explain logs the destination's versions of the rows whose first key
// column is key, and, with an audit consumer, every change published for
// them.
func (w *world) explain(ctx context.Context, dst *pgx.Conn, table, key string) {
	col := watched[table][0]
	rows, err := dst.Query(ctx, "SELECT t::text FROM "+pgx.Identifier{table}.Sanitize()+" AS t WHERE "+
		pgx.Identifier{col}.Sanitize()+"::text = $1", key)
	if err == nil {
		got, _ := pgx.CollectRows(rows, pgx.RowTo[string])
		w.t.Logf("destination %s rows with %s = %s (with versions): %q", table, col, key, got)
	}
	// The postgres destination's tombstones of the key (its bookkeeping
	// schema; see services/sink/drivers/postgres).
	var tomb string
	if dst.QueryRow(ctx, `SELECT tombstone_table FROM _rosetta.tables WHERE table_name = $1`, table).Scan(&tomb) == nil {
		rows, err := dst.Query(ctx, "SELECT x::text FROM "+pgx.Identifier{"_rosetta", tomb}.Sanitize()+" AS x WHERE "+
			pgx.Identifier{col}.Sanitize()+"::text = $1", key)
		if err == nil {
			got, _ := pgx.CollectRows(rows, pgx.RowTo[string])
			w.t.Logf("destination tombstones of %s %s = %s: %q", table, col, key, got)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	stream, err := w.js.Stream(ctx, contracts.StreamName(w.sourceID))
	if err != nil {
		return
	}
	if _, err := stream.Consumer(ctx, auditConsumer); err != nil {
		return // without an audit consumer the stream keeps only unacked changes
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return
	}
	var b strings.Builder
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		msg, err := contracts.DecodeMessage(m.Data)
		if err != nil || msg.Source.Table != table {
			continue
		}
		for i, ch := range msg.All() {
			if k := string(ch.Key[col]); k == key || string(ch.Before[col]) == key {
				fmt.Fprintf(&b, "  seq %d.%d %s op %s change seq %d key %s after %s\n", seq, i, m.Header.Get(jetstream.MsgIDHeader), ch.Op,
					ch.Source.Seq, mustJSON(ch.Key), mustJSON(ch.After))
			}
		}
	}
	w.t.Logf("published changes of %s %s = %s:\n%s", table, col, key, b.String())
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

const auditConsumer = "faults_audit"

// startAudit creates the source's stream and a durable consumer that never
// acks, so the stream (interest retention) keeps every change published.
// It must run after createSource and before createPipeline.
func (w *world) startAudit() {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := w.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: contracts.StreamName(w.sourceID), Subjects: []string{contracts.SourceFilter(w.sourceID)},
		Retention: jetstream.InterestPolicy, Discard: jetstream.DiscardNew, MaxBytes: 1 << 30,
		Storage: jetstream.FileStorage, Duplicates: 10 * time.Minute, Replicas: w.replicas,
	})
	if err != nil {
		w.t.Fatalf("create stream: %v", err)
	}
	_, err = w.js.CreateOrUpdateConsumer(ctx, contracts.StreamName(w.sourceID), jetstream.ConsumerConfig{
		Durable: auditConsumer, AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		w.t.Fatalf("create audit consumer: %v", err)
	}
}

// auditIDs reads every message of the source's stream and returns how many
// times each change occurs, by its identity in the body
// (contracts.MsgID of source, commit LSN and seq), counting every change of
// a message that holds several: a change stored twice counts twice
// whatever its headers say. A message whose Nats-Msg-Id is not its own
// (auditMsgID) fails the test.
func (w *world) auditIDs() map[string]int {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stream, err := w.js.Stream(ctx, contracts.StreamName(w.sourceID))
	if err != nil {
		w.t.Fatalf("audit: %v", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		w.t.Fatalf("audit: %v", err)
	}
	// A consumer of its own rather than an ordered one: on an interest
	// stream every consumer must have the stream's replica count, and an
	// ordered consumer has one. AckNone: reading acks nothing the audit
	// consumer still holds.
	cons, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
		AckPolicy: jetstream.AckNonePolicy, DeliverPolicy: jetstream.DeliverAllPolicy,
		Replicas: w.replicas, InactiveThreshold: time.Minute,
	})
	if err != nil {
		w.t.Fatalf("audit: %v", err)
	}
	defer func() {
		if err := stream.DeleteConsumer(context.Background(), cons.CachedInfo().Name); err != nil {
			w.t.Logf("audit: delete reader: %v", err)
		}
	}()
	ids := map[string]int{}
	var seen uint64
	bad := 0
	for seen < info.State.Msgs {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			w.t.Fatalf("audit fetch: %v", err)
		}
		n := 0
		for m := range batch.Messages() {
			msg, err := contracts.DecodeMessage(m.Data())
			if err != nil {
				w.t.Fatalf("audit: undecodable message %s: %v", m.Subject(), err)
			}
			if h := m.Headers().Get(jetstream.MsgIDHeader); !auditMsgID(m.Subject(), h, msg) && bad < 5 {
				w.t.Errorf("audit: message of %d changes from %s on %s published with Nats-Msg-Id %q", len(msg.Changes),
					msg.Source.CommitLSN, m.Subject(), h)
				bad++
			}
			for _, ch := range msg.All() {
				ids[contracts.MsgID(ch.Source.SourceID, ch.Source.CommitLSN, ch.Source.Seq)]++
			}
			n++
		}
		if err := batch.Error(); err != nil {
			w.t.Fatalf("audit fetch: %v", err)
		}
		if n == 0 {
			w.t.Fatalf("audit: stream has %d messages, read %d", info.State.Msgs, seen)
		}
		seen += uint64(n)
	}
	return ids
}

// auditMsgID reports whether id is the Nats-Msg-Id capture gives the
// message m published on subject: contracts.MessageID of its source,
// commit LSN, table, partition (the subject's last token) and some chunk
// (envelope version 2), or, for a message of one change published before
// version 2, contracts.MsgID of that change.
func auditMsgID(subject, id string, m *contracts.Message) bool {
	s := &m.Source
	if len(m.Changes) == 1 && id == contracts.MsgID(s.SourceID, s.CommitLSN, m.Changes[0].Seq) {
		return true
	}
	partition, err := strconv.Atoi(subject[strings.LastIndexByte(subject, '.')+1:])
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(id, ':')
	chunk, err := strconv.Atoi(id[i+1:])
	return i >= 0 && err == nil && id == contracts.MessageID(s.SourceID, s.CommitLSN, s.Schema, s.Table, partition, chunk)
}
