package walmonitor_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/metrics"
	"github.com/rosettacdc/rosetta/pkg/secrets"
	"github.com/rosettacdc/rosetta/pkg/testkit"
	"github.com/rosettacdc/rosetta/pkg/walmonitor"
)

var _ walmonitor.Observer = (*metrics.Metrics)(nil)

// hangingServer accepts connections and never answers, like a source
// behind a black hole, until release is called.
func hangingServer(t *testing.T) (port int, release func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	var once sync.Once
	release = func() {
		once.Do(func() {
			ln.Close()
			mu.Lock()
			defer mu.Unlock()
			for _, c := range conns {
				c.Close()
			}
		})
	}
	t.Cleanup(release)
	return ln.Addr().(*net.TCPAddr).Port, release
}

func TestMonitor(t *testing.T) {
	pg := testkit.StartPostgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfgDB := pg.CreateDatabase(t, "cfg")
	box, err := secrets.NewBox("walmonitor-test-secret-key-0123")
	if err != nil {
		t.Fatal(err)
	}
	cs, err := configstore.Open(ctx, pg.DSN(cfgDB), box)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cs.Close)
	if err := cs.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	store, err := walmonitor.OpenStore(ctx, pg.DSN(cfgDB))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)

	srcDB := pg.CreateDatabase(t, "src")
	slot := "wal_mon_" + testkit.RandomSuffix()
	pg.Exec(t, srcDB, "SELECT pg_create_logical_replication_slot($1, 'pgoutput')", slot)
	t.Cleanup(func() { pg.Exec(t, srcDB, "SELECT pg_drop_replication_slot($1)", slot) })
	good, err := cs.CreateSource(ctx, configstore.SourceInput{Name: "good", Host: "127.0.0.1", Port: pg.Port,
		Database: srcDB, User: "postgres", Slot: slot, SSLMode: "disable"})
	if err != nil {
		t.Fatal(err)
	}
	hangPort, release := hangingServer(t)
	bad, err := cs.CreateSource(ctx, configstore.SourceInput{Name: "bad", Host: "127.0.0.1", Port: hangPort,
		Database: "nowhere", User: "postgres", SSLMode: "disable"})
	if err != nil {
		t.Fatal(err)
	}

	// A sample older than the retention is deleted by the first round.
	old := "0/1"
	if err := store.Record(ctx, walmonitor.Sample{SourceID: good.ID, At: time.Now().Add(-8 * 24 * time.Hour), WALLSN: &old}); err != nil {
		t.Fatal(err)
	}

	m := metrics.New()
	mon := walmonitor.New(walmonitor.Config{Interval: 100 * time.Millisecond, Timeout: time.Minute, Retention: 7 * 24 * time.Hour},
		cs, store, m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mon.Run(runCtx) }()

	list := func(id int64) []walmonitor.Sample {
		t.Helper()
		xs, err := store.List(ctx, walmonitor.Query{SourceID: id})
		if err != nil {
			t.Fatal(err)
		}
		return xs
	}
	// While the bad source's check hangs (its timeout is a minute), the
	// good one is checked round after round.
	eventually(t, "three samples of the good source", func() bool { return len(list(good.ID)) >= 3 })
	if xs := list(bad.ID); len(xs) != 0 {
		t.Fatalf("the hung source has samples before its check ended: %+v", xs)
	}
	for _, x := range list(good.ID) {
		if x.Error != "" || x.WALLSN == nil || x.RetainedBytes == nil || x.WALStatus == nil || *x.WALStatus != "reserved" {
			t.Fatalf("good sample: %+v", x)
		}
		if x.At.Before(time.Now().Add(-time.Hour)) {
			t.Fatalf("the sample older than the retention was not deleted: %+v", x)
		}
	}

	// The bad source's check fails when its server goes away: an error row.
	release()
	eventually(t, "an error sample of the bad source", func() bool { return len(list(bad.ID)) == 1 })
	if x := list(bad.ID)[0]; x.Error == "" || x.RetainedBytes != nil {
		t.Fatalf("bad sample: %+v", x)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// Time filters.
	all := list(0)
	from := list(good.ID)[1].At
	xs, err := store.List(ctx, walmonitor.Query{SourceID: good.ID, From: from})
	if err != nil {
		t.Fatal(err)
	}
	if len(xs) != len(list(good.ID))-1 {
		t.Fatalf("from %s: %d of %d samples", from, len(xs), len(all))
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
