package capture

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/natsx/natsxtest"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

func TestAckTrackerConfirmsOnlyAcknowledgedCommittedTransactions(t *testing.T) {
	t.Parallel()
	now := time.Now()
	a := newAckTracker(100, 0)
	poll := func() {
		t.Helper()
		if err := a.poll(now, time.Minute); err != nil {
			t.Fatal(err)
		}
	}

	// tx1: two publishes, commit at 200. tx2: one publish, commit at 300.
	a.begin()
	f1, f2 := natsxtest.NewFuture(), natsxtest.NewFuture()
	a.add(f1, now, "1")
	a.add(f2, now, "2")
	a.commit(200)
	a.begin()
	f3 := natsxtest.NewFuture()
	a.add(f3, now, "3")
	a.commit(300)
	// tx3 is still open.
	a.begin()
	f4 := natsxtest.NewFuture()
	a.add(f4, now, "4")

	steps := []struct {
		do   func()
		want pglogrepl.LSN
	}{
		{func() {}, 100},
		{f3.Ack, 100}, // a later transaction's ack alone confirms nothing
		{f1.Ack, 100}, // tx1 half acknowledged
		{f2.Ack, 300}, // tx1 and tx2 fully acknowledged
		{f4.Ack, 300}, // tx3 acknowledged but not committed
		{func() { a.commit(400) }, 400},
	}
	for i, s := range steps {
		s.do()
		poll()
		if a.confirmed != s.want {
			t.Fatalf("step %d: confirmed = %s, want %s", i, a.confirmed, pglogrepl.LSN(s.want))
		}
	}
	if !a.idle() || a.inFlight() != 0 {
		t.Fatalf("idle=%v inFlight=%d after everything acknowledged", a.idle(), a.inFlight())
	}
	// Idle: a keepalive's WAL end may be confirmed; not while in flight.
	a.observeIdle(500)
	if a.confirmed != 500 {
		t.Fatalf("idle keepalive: confirmed = %s", a.confirmed)
	}
	a.begin()
	a.observeIdle(600)
	if a.confirmed != 500 {
		t.Fatalf("keepalive during an open transaction moved confirmed to %s", a.confirmed)
	}
	a.commit(550) // an empty transaction
	a.observeIdle(450)
	if a.confirmed != 550 {
		t.Fatalf("confirmed = %s, want 550 (never backwards)", a.confirmed)
	}
}

func TestAckTrackerErrors(t *testing.T) {
	t.Parallel()
	now := time.Now()

	a := newAckTracker(10, 0)
	a.begin()
	f1, f2 := natsxtest.NewFuture(), natsxtest.NewFuture()
	a.add(f1, now, "one")
	a.add(f2, now, "two")
	a.commit(20)
	f1.Ack()
	f2.Fail(errors.New("nats: maximum bytes exceeded"))
	err := a.poll(now, time.Minute)
	if err == nil || !strings.Contains(err.Error(), "maximum bytes") || !strings.Contains(err.Error(), "two") {
		t.Fatalf("poll error = %v", err)
	}
	if a.confirmed != 10 {
		t.Fatalf("a failed publish advanced confirmed to %s", a.confirmed)
	}

	b := newAckTracker(10, 0)
	b.begin()
	b.add(natsxtest.NewFuture(), now.Add(-2*time.Minute), "slow")
	if err := b.poll(now, time.Minute); err == nil || !strings.Contains(err.Error(), "no acknowledgement") {
		t.Fatalf("timeout error = %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := b.waitOldest(ctx, time.Hour); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waitOldest = %v, want deadline exceeded", err)
	}
	if err := b.add(natsxtest.NewFuture(), now, "x"); err != nil {
		t.Fatal(err)
	}
	c := newAckTracker(0, 0)
	if err := c.add(natsxtest.NewFuture(), now, "x"); err == nil {
		t.Fatal("publish outside a transaction accepted")
	}
	if err := c.commit(5); err == nil {
		t.Fatal("commit outside a transaction accepted")
	}
}

func TestAckTrackerLongTransaction(t *testing.T) {
	t.Parallel()
	now := time.Now()
	a := newAckTracker(1, 0)
	a.begin()
	var fs []*natsxtest.Future
	for i := 0; i < 5000; i++ {
		f := natsxtest.NewFuture()
		fs = append(fs, f)
		if err := a.add(f, now, "x"); err != nil {
			t.Fatal(err)
		}
		// Acknowledge with a lag, as JetStream would.
		if i >= 100 {
			fs[i-100].Ack()
			if err := a.poll(now, time.Minute); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The queue's compaction is natsx.Acks's (TestAcksLongQueue).
	if a.inFlight() != 100 {
		t.Fatalf("inFlight = %d", a.inFlight())
	}
	a.commit(99)
	for _, f := range fs[4900:] {
		f.Ack()
	}
	ctx := context.Background()
	for a.inFlight() > 0 {
		if err := a.waitOldest(ctx, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if a.confirmed != 99 {
		t.Fatalf("confirmed = %s", a.confirmed)
	}
}

func TestDesiredSources(t *testing.T) {
	t.Parallel()
	src := func(id int64) configstore.Source {
		return configstore.Source{ID: id, Name: "s", Host: "h", Port: 5432, Slot: "slot", Publication: "pub"}
	}
	pl := func(id, source int64, status configstore.PipelineStatus, dests []int64, tables ...string) configstore.Pipeline {
		return configstore.Pipeline{ID: id, SourceID: source, Status: status, DestinationIDs: dests, Tables: tables}
	}
	sources := []configstore.Source{src(1), src(2), src(3)}
	pipelines := []configstore.Pipeline{
		pl(10, 1, configstore.StatusStart, []int64{7, 5}, "public.b", "public.a"),
		pl(11, 1, configstore.StatusPause, []int64{5}, "sales.orders", "public.a", "bad"),
		pl(12, 2, configstore.StatusPause, []int64{5}, "public.x"),
		pl(13, 9, configstore.StatusStart, []int64{5}, "public.y"), // unknown source
	}
	got, problems := desiredSources(sources, pipelines)
	if len(got) != 1 {
		t.Fatalf("desired sources = %v, want only source 1", got)
	}
	s1 := got[1]
	a, b, o := natsx.Table{Schema: "public", Name: "a"}, natsx.Table{Schema: "public", Name: "b"}, natsx.Table{Schema: "sales", Name: "orders"}
	if !slices.Equal(s1.Tables, []natsx.Table{a, b, o}) {
		t.Errorf("tables = %v", s1.Tables)
	}
	want := []consumerSpec{
		{PipelineID: 10, DestinationID: 5, Tables: []natsx.Table{a, b}},
		{PipelineID: 10, DestinationID: 7, Tables: []natsx.Table{a, b}},
		{PipelineID: 11, DestinationID: 5, Tables: []natsx.Table{a, o}},
	}
	if !sameTables(s1, sourceSpec{Tables: []natsx.Table{a, b, o}, Consumers: want}) {
		t.Errorf("consumers = %+v", s1.Consumers)
	}
	if len(problems) != 1 || !strings.Contains(problems[0].Error(), `"bad"`) {
		t.Errorf("problems = %v", problems)
	}

	changed := src(1)
	changed.Password = "new"
	if sameConnection(src(1), changed) {
		t.Error("a password change keeps the connection")
	}
	for name, change := range map[string]func(*configstore.Source){
		"sslrootcert":  func(s *configstore.Source) { s.SSLRootCert = "/keys/ca.pem" },
		"sslkey":       func(s *configstore.Source) { s.SSLKey = "key" },
		"require_auth": func(s *configstore.Source) { s.RequireAuth = "scram-sha-256" },
	} {
		c := src(1)
		change(&c)
		if sameConnection(src(1), c) {
			t.Errorf("a change of %s keeps the connection", name)
		}
	}
	renamed := src(1)
	renamed.Name = "other"
	if !sameConnection(src(1), renamed) {
		t.Error("a rename restarts the worker")
	}
}

func TestConnectionConfig(t *testing.T) {
	t.Parallel()
	s := configstore.Source{ID: 1, Host: "db.example", Port: 6543, Database: "my db/x", User: "u@x",
		Password: "p@ss:w/rd?&=", SSLMode: "require"}
	q, err := queryConfig(s, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if q.Host != "db.example" || q.Port != 6543 || q.Database != "my db/x" || q.User != "u@x" ||
		q.Password != s.Password || q.ConnectTimeout != 3*time.Second || q.TLSConfig == nil {
		t.Fatalf("query config = host %s port %d db %q user %q timeout %s tls %v", q.Host, q.Port, q.Database, q.User,
			q.ConnectTimeout, q.TLSConfig != nil)
	}
	r, err := replicationConfig(s, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if r.RuntimeParams["replication"] != "database" || r.RuntimeParams["TimeZone"] != "UTC" || r.Password != s.Password {
		t.Fatalf("replication params = %v", r.RuntimeParams)
	}
	if _, err := queryConfig(configstore.Source{Host: "h", Port: 1, SSLMode: "bogus", Password: "secret-pw"}, time.Second); err == nil ||
		strings.Contains(err.Error(), "secret-pw") {
		t.Fatalf("bad sslmode: err = %v", err)
	}
	// The replication connection carries the source's TLS and accepted
	// methods exactly as the query connection does: no plain fallback
	// under verify-full, the server's name checked, SCRAM only.
	ca := testkit.NewCA(t)
	tlsSrc := s
	tlsSrc.SSLMode, tlsSrc.SSLRootCert, tlsSrc.RequireAuth, tlsSrc.ChannelBinding = "verify-full", string(ca.CertPEM), "scram-sha-256", "require"
	for name, build := range map[string]func() (*pgconn.Config, error){
		"query":       func() (*pgconn.Config, error) { c, err := queryConfig(tlsSrc, time.Second); return &c.Config, err },
		"replication": func() (*pgconn.Config, error) { return replicationConfig(tlsSrc, time.Second) },
	} {
		c, err := build()
		if err != nil {
			t.Fatalf("%s config: %v", name, err)
		}
		if c.TLSConfig == nil || c.TLSConfig.InsecureSkipVerify || c.TLSConfig.ServerName != "db.example" || c.TLSConfig.RootCAs == nil ||
			len(c.Fallbacks) != 0 || c.RequireAuth != "scram-sha-256" || c.ChannelBinding != "require" {
			t.Fatalf("%s config: tls %+v fallbacks %d require_auth %q channel_binding %q", name, c.TLSConfig, len(c.Fallbacks), c.RequireAuth, c.ChannelBinding)
		}
	}
	msg := redact("password authentication failed: p@ss:w/rd?&= / p%40ss%3Aw%2Frd%3F%26%3D", s.Password)
	if strings.Contains(msg, "p@ss") || strings.Contains(msg, "p%40ss") {
		t.Fatalf("redact left the password: %s", msg)
	}
}

// TestAckTrackerWaitsOneFsyncIntervalBeforeConfirming checks that with a
// durability delay a transaction is confirmed only once its last ack is
// that old, and that later transactions wait behind it.
func TestAckTrackerWaitsOneFsyncIntervalBeforeConfirming(t *testing.T) {
	t.Parallel()
	clock := time.Unix(1000, 0)
	a := newAckTracker(100, 2*time.Second)
	a.now = func() time.Time { return clock }
	poll := func() {
		t.Helper()
		if err := a.poll(clock, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	a.begin()
	f1 := natsxtest.NewFuture()
	a.add(f1, clock, "1")
	a.commit(200)
	f1.Ack()
	poll()
	if a.confirmed != 100 {
		t.Fatalf("confirmed %d right after the ack, want 100 until the delay passed", a.confirmed)
	}
	clock = clock.Add(time.Second)
	a.begin()
	a.commit(300) // empty transaction, settled now
	poll()
	if a.confirmed != 100 {
		t.Fatalf("confirmed %d after 1s, want 100", a.confirmed)
	}
	if a.idle() {
		t.Fatal("tracker idle while transactions wait for the delay: a keepalive could confirm past them")
	}
	clock = clock.Add(time.Second)
	poll()
	if a.confirmed != 200 {
		t.Fatalf("confirmed %d after 2s, want 200 (the second transaction waits 1s more)", a.confirmed)
	}
	clock = clock.Add(time.Second)
	poll()
	if a.confirmed != 300 {
		t.Fatalf("confirmed %d after 3s, want 300", a.confirmed)
	}
}

// add records a publish of the open transaction, as stream.publish does
// through the publisher (which adds it to pubs), for the tests that hand
// the tracker futures of their own.
func (a *ackTracker) add(f natsx.AckFuture, at time.Time, what string) error {
	tx := a.publishing()
	if tx == nil {
		return errNoOpenTx(what)
	}
	a.pubs.Add(f, at, what, tx)
	return nil
}
