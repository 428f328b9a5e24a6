package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// syncBuffer is a bytes.Buffer safe to read while tail writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testChange(sourceID int64, table string, op contracts.Op, id int, commitLSN string) contracts.Change {
	ch := contracts.Change{
		V:  contracts.EnvelopeVersion,
		Op: op,
		Source: contracts.Source{SourceID: sourceID, Database: "shop", Schema: "public", Table: table,
			LSN: commitLSN, CommitLSN: commitLSN, Seq: 1,
			CommitTime: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)},
		Columns: []contracts.Column{
			{Name: "id", Type: "bigint", BaseType: "bigint", Key: true},
			{Name: "title", Type: "text", BaseType: "text"},
		},
		Key: contracts.Row{"id": json.RawMessage(itoa(id))},
	}
	if op != contracts.OpDelete {
		ch.After = contracts.Row{"id": json.RawMessage(itoa(id)), "title": json.RawMessage(`"t"`)}
	}
	return ch
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// publish publishes ch as a version 1 message (what a stream may still
// retain from before version 2).
func publish(t *testing.T, js jetstream.JetStream, ch contracts.Change) {
	t.Helper()
	data, err := json.Marshal(ch)
	if err != nil {
		t.Fatal(err)
	}
	publishBody(t, js, &ch, data)
}

// publishMessage publishes changes (of one table of one transaction) as
// one version 2 message.
func publishMessage(t *testing.T, js jetstream.JetStream, changes []contracts.Change) {
	t.Helper()
	data, err := contracts.MessageOf(changes).AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	publishBody(t, js, &changes[0], data)
}

func publishBody(t *testing.T, js jetstream.JetStream, ch *contracts.Change, data []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	subj := contracts.ChangeSubject(ch.Source.SourceID, ch.Source.Schema, ch.Source.Table, 0)
	if _, err := js.Publish(ctx, subj, data); err != nil {
		t.Fatalf("publish %s: %v", subj, err)
	}
}

// startTail runs the command in the background and returns its output and
// a function waiting for it to end.
func startTail(t *testing.T, args ...string) (*syncBuffer, func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	out := &syncBuffer{}
	var stderr bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- tailCommand(ctx, args, out, &stderr, time.Now) }()
	return out, func() error {
		defer cancel()
		select {
		case err := <-done:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func TestTailPrintsLiveChanges(t *testing.T) {
	n := testkit.StartNATS(t)
	_, js := n.Connect(t)
	ctx := context.Background()
	const src = 41
	if _, err := natsx.EnsureSourceStream(ctx, js, src, natsx.StreamLimits{}); err != nil {
		t.Fatal(err)
	}
	// A durable consumer stands for a pipeline, so the interest stream keeps
	// changes for --seq.
	if _, err := natsx.EnsurePipelineConsumer(ctx, js, src, 1, 1, []natsx.Table{{Schema: "public", Name: "orders"}, {Schema: "public", Name: "customers"}}); err != nil {
		t.Fatal(err)
	}
	publish(t, js, testChange(src, "orders", contracts.OpCreate, 1, "0/10"))

	// From now: the change published before tail started is not shown.
	out, wait := startTail(t, "41", "--nats-url", n.URL, "-n", "2")
	// Wait for the consumer to exist before publishing.
	waitFor(t, func() bool { return consumerCount(t, js, src) >= 2 })
	publish(t, js, testChange(src, "orders", contracts.OpUpdate, 2, "0/20"))
	publish(t, js, testChange(src, "customers", contracts.OpDelete, 3, "0/30"))
	if err := wait(); err != nil {
		t.Fatalf("tail: %v", err)
	}
	got := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{
		"2026-11-23T10:00:00.000000Z  u  public.orders  id=2  id,title  #2",
		"2026-11-23T10:00:00.000000Z  d  public.customers  id=3  #3",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("tail printed\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// --seq 1 --json, one table: the envelopes as published.
	out, wait = startTail(t, "41.public.orders", "--nats-url", n.URL, "--seq", "1", "--json", "-n", "2")
	if err := wait(); err != nil {
		t.Fatalf("tail --seq: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("tail --json printed %d lines:\n%s", len(lines), out.String())
	}
	for i, id := range []int{1, 2} {
		var ch contracts.Change
		if err := json.Unmarshal([]byte(lines[i]), &ch); err != nil {
			t.Fatalf("line %d is not a change: %v: %s", i, err, lines[i])
		}
		if string(ch.Key["id"]) != itoa(id) || ch.Source.Table != "orders" {
			t.Fatalf("line %d: got %s", i, lines[i])
		}
	}

	// --since a time before everything: all three changes, in order.
	out, wait = startTail(t, "41", "--nats-url", n.URL, "--since", "1h", "-n", "3")
	if err := wait(); err != nil {
		t.Fatalf("tail --since: %v", err)
	}
	if c := strings.Count(out.String(), "\n"); c != 3 || !strings.Contains(out.String(), "  c  public.orders  id=1") {
		t.Fatalf("tail --since printed:\n%s", out.String())
	}
}

func TestTailMissingStream(t *testing.T) {
	n := testkit.StartNATS(t)
	var out, stderr bytes.Buffer
	err := tailCommand(context.Background(), []string{"999", "--nats-url", n.URL}, &out, &stderr, time.Now)
	if err == nil || !strings.Contains(err.Error(), "stream ROSETTA_CDC_999 does not exist") {
		t.Fatalf("want a clear missing-stream error, got %v", err)
	}
}

func TestTailArgs(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		args    []string
		want    tailOptions
		wantErr string
	}{
		{args: []string{"3"}, want: tailOptions{SourceID: 3}},
		{args: []string{"3.public.my.table"}, want: tailOptions{SourceID: 3, Schema: "public", Table: "my.table"}},
		{args: []string{"--json", "3"}, want: tailOptions{SourceID: 3, JSON: true}},
		{args: []string{"3", "--since", "10m"}, want: tailOptions{SourceID: 3, Since: now.Add(-10 * time.Minute)}},
		{args: []string{"3", "--since", "2026-11-23T10:00:00Z"}, want: tailOptions{SourceID: 3, Since: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}},
		{args: []string{"3", "--seq", "17"}, want: tailOptions{SourceID: 3, Seq: 17}},
		{args: []string{"3", "--seq", "1", "--since", "1m"}, wantErr: "exclude"},
		{args: []string{"x"}, wantErr: "positive source id"},
		{args: []string{"3.public"}, wantErr: "<schema>.<table>"},
		{args: []string{"3", "--since", "yesterday"}, wantErr: "RFC3339"},
		{args: nil, wantErr: "missing"},
	} {
		var stderr bytes.Buffer
		got, err := parseTailArgs(tc.args, &stderr, func() time.Time { return now })
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%v: want error with %q, got %v", tc.args, tc.wantErr, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tc.args, err)
			continue
		}
		// The connection fields come from the environment, tested apart.
		got.NATSURL, got.DataDir, got.embedded = "", "", false
		if !got.Since.Equal(tc.want.Since) {
			t.Errorf("%v: since %v, want %v", tc.args, got.Since, tc.want.Since)
		}
		got.Since, tc.want.Since = time.Time{}, time.Time{}
		if got != tc.want {
			t.Errorf("%v: got %+v, want %+v", tc.args, got, tc.want)
		}
	}
}

func consumerCount(t *testing.T, js jetstream.JetStream, src int64) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, contracts.StreamName(src))
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Consumers
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 15s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTailCatchUp checks that a tail started in the past reports its
// catching up on stderr, never on stdout: --json output stays one change
// envelope per line.
func TestTailCatchUp(t *testing.T) {
	n := testkit.StartNATS(t)
	_, js := n.Connect(t)
	ctx := context.Background()
	const src = 42
	if _, err := natsx.EnsureSourceStream(ctx, js, src, natsx.StreamLimits{}); err != nil {
		t.Fatal(err)
	}
	if _, err := natsx.EnsurePipelineConsumer(ctx, js, src, 1, 1, []natsx.Table{{Schema: "public", Name: "orders"}}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 30; i++ {
		publish(t, js, testChange(src, "orders", contracts.OpCreate, i, contracts.FormatLSN(uint64(16*i))))
	}
	var out, stderr syncBuffer
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := tailCommand(tctx, []string{"42", "--nats-url", n.URL, "--seq", "1", "--json", "-n", "30"}, &out, &stderr, time.Now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 30 {
		t.Fatalf("stdout has %d lines, want 30:\n%s", len(lines), out.String())
	}
	for _, l := range lines {
		var ch contracts.Change
		if err := json.Unmarshal([]byte(l), &ch); err != nil {
			t.Fatalf("stdout line is not a change envelope: %v: %s", err, l)
		}
	}
	want := "tail: catching up: 0 of 30 messages\n"
	if got := stderr.String(); !strings.HasPrefix(got, want) || !strings.HasSuffix(got, "tail: caught up after 30 messages; following live changes\n") {
		t.Fatalf("stderr = %q", got)
	}

	// From the end: nothing to catch up.
	stderr = syncBuffer{}
	out = syncBuffer{}
	tctx2, cancel2 := context.WithTimeout(ctx, 2*time.Second)
	defer cancel2()
	if err := tailCommand(tctx2, []string{"42", "--nats-url", n.URL, "--seq", "31"}, &out, &stderr, time.Now); err != nil {
		t.Fatal(err)
	}
	if got := stderr.String(); got != "tail: nothing to catch up from there; following live changes\n" || out.String() != "" {
		t.Fatalf("from the end: stderr %q, stdout %q", got, out.String())
	}
}

// TestCatchUpCadence checks the intermediate lines: at most one a second,
// with the total growing when changes arrive meanwhile.
func TestCatchUpCadence(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	c := newCatchUp(&buf, 1000, func() time.Time { return now })
	for i := 1; i <= 400; i++ {
		if i%100 == 0 {
			now = now.Add(600 * time.Millisecond)
		}
		if c.seen(uint64(1000 - i + i/200)) {
			t.Fatal("caught up too early")
		}
	}
	want := "tail: catching up: 0 of 1,000 messages\n" +
		"tail: catching up: 200 of 1,001 messages (19%)\n" +
		"tail: catching up: 400 of 1,002 messages (39%)\n"
	if buf.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", buf.String(), want)
	}
}

// TestTailRedactsURL: a NATS URL holding a password is not echoed when
// tail cannot connect.
func TestTailRedactsURL(t *testing.T) {
	t.Setenv("ROSETTA_NATS_URL", "")
	port := testkit.FreePort(t)
	var out, stderr bytes.Buffer
	url := "nats://capture:pw-4711-secret@127.0.0.1:" + strconv.Itoa(port)
	err := tailCommand(context.Background(), []string{"1", "--nats-url", url}, &out, &stderr, time.Now)
	if err == nil {
		t.Fatal("tail connected to a closed port")
	}
	if strings.Contains(err.Error(), "pw-4711-secret") || strings.Contains(stderr.String(), "pw-4711-secret") {
		t.Fatalf("tail echoes the password: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(err.Error(), "REDACTED@127.0.0.1") {
		t.Fatalf("tail error %q does not name the server", err)
	}
}

// TestTailPrintsChangesOfMessages: a version 2 message prints one line
// per change, each with the message's stream sequence and the change's
// index, after a version 1 message retained from before; --json prints
// each change as a version 1 event; -n counts changes, stopping inside a
// message; catching up counts messages.
func TestTailPrintsChangesOfMessages(t *testing.T) {
	n := testkit.StartNATS(t)
	_, js := n.Connect(t)
	ctx := context.Background()
	const src = 43
	if _, err := natsx.EnsureSourceStream(ctx, js, src, natsx.StreamLimits{}); err != nil {
		t.Fatal(err)
	}
	if _, err := natsx.EnsurePipelineConsumer(ctx, js, src, 1, 1, []natsx.Table{{Schema: "public", Name: "orders"}}); err != nil {
		t.Fatal(err)
	}
	publish(t, js, testChange(src, "orders", contracts.OpCreate, 1, "0/10"))
	tx := []contracts.Change{
		testChange(src, "orders", contracts.OpCreate, 2, "0/20"),
		testChange(src, "orders", contracts.OpUpdate, 1, "0/20"),
		testChange(src, "orders", contracts.OpDelete, 3, "0/20"),
	}
	for i := range tx {
		tx[i].V = contracts.MessageVersion
		tx[i].Source.Seq = int64(i + 1)
	}
	publishMessage(t, js, tx)

	out, wait := startTail(t, "43", "--nats-url", n.URL, "--seq", "1", "-n", "4")
	if err := wait(); err != nil {
		t.Fatalf("tail: %v", err)
	}
	want := strings.Join([]string{
		"2026-11-23T10:00:00.000000Z  c  public.orders  id=1  id,title  #1",
		"2026-11-23T10:00:00.000000Z  c  public.orders  id=2  id,title  #2.0",
		"2026-11-23T10:00:00.000000Z  u  public.orders  id=1  id,title  #2.1",
		"2026-11-23T10:00:00.000000Z  d  public.orders  id=3  #2.2",
	}, "\n")
	if got := strings.TrimSpace(out.String()); got != want {
		t.Fatalf("tail printed\n%s\nwant\n%s", got, want)
	}

	var stdout, stderr syncBuffer
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := tailCommand(tctx, []string{"43", "--nats-url", n.URL, "--seq", "1", "--json", "-n", "3"}, &stdout, &stderr, time.Now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("tail --json -n 3 printed %d lines:\n%s", len(lines), stdout.String())
	}
	for i, l := range lines {
		var ch contracts.Change
		if err := json.Unmarshal([]byte(l), &ch); err != nil {
			t.Fatalf("line %d is not a change: %v: %s", i, err, l)
		}
		wantSeq := int64(1)
		if i > 0 {
			wantSeq = int64(i)
		}
		if ch.V != contracts.EnvelopeVersion || ch.Source.Seq != wantSeq || ch.Source.CommitLSN != []string{"0/10", "0/20", "0/20"}[i] {
			t.Fatalf("line %d: %s", i, l)
		}
	}
	if got := stderr.String(); !strings.HasPrefix(got, "tail: catching up: 0 of 2 messages\n") {
		t.Fatalf("stderr = %q", got)
	}
}
