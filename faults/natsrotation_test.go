package faults

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/crypto/bcrypt"

	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// TestNATSCredentialRotation rotates the sink's NATS password on a
// nats-server process that loads deploy/nats/auth.conf, while capture
// publishes and a sink consumes without a pause, as in docs/transport.md
// ("Rotating credentials"): (a) a second user sink-next with the sink's
// permissions is added and the server reloads (SIGHUP); (b) the sink
// moves to sink-next; (c) the user sink is removed and the server
// reloads. No publish or fetch fails, every published change is consumed,
// no connection of a remaining user is dropped by the reloads, a
// connection still using sink is cut at (c) and sink's password is then
// refused. The same reload as (a) changes tap's password in place, which
// cuts the tap's live connection: why the procedure needs a second user.
func TestNATSCredentialRotation(t *testing.T) {
	dir := t.TempDir()
	base, err := os.ReadFile(filepath.Join("..", "deploy", "nats", "auth.conf"))
	if err != nil {
		t.Fatal(err)
	}
	pw := map[string]string{}
	var env []string
	for _, role := range append(roles, "sink-next", "tap-new") {
		pw[role] = randomHex(t)
		if !strings.Contains(role, "-") {
			env = append(env, "NATS_"+strings.ToUpper(role)+"_PASSWORD="+pw[role])
		}
	}
	// nats-server reads its environment once, at start, so the added
	// user's password is in the file the reload reads, as a bcrypt hash
	// (what `nats server passwd` prints).
	hash, err := bcrypt.GenerateFromPassword([]byte(pw["sink-next"]), 11)
	if err != nil {
		t.Fatal(err)
	}
	writeAuth := func(next, old bool, tapPassword string) {
		t.Helper()
		conf := rotationAuth(t, string(base), next, old, string(hash))
		if tapPassword != "" {
			conf = replaceOnce(t, conf, "password: $NATS_TAP_PASSWORD", fmt.Sprintf("password: %q", tapPassword))
		}
		if err := os.WriteFile(filepath.Join(dir, "auth.conf"), []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeAuth(false, true, "")
	port := testkit.FreePort(t)
	mainConf := fmt.Sprintf("host: 127.0.0.1\nport: %d\njetstream { store_dir: %q }\ninclude ./auth.conf\n", port, filepath.Join(dir, "js"))
	if err := os.WriteFile(filepath.Join(dir, "nats-server.conf"), []byte(mainConf), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := &natsServer{port: port, dir: dir}
	srv.proc = newProc(t, "nats-server", env, bins.natsServer, "-c", filepath.Join(dir, "nats-server.conf"))
	srv.start()
	if !srv.waitReady(30 * time.Second) {
		t.Fatalf("nats-server with auth.conf did not start:\n%s", srv.log.String())
	}
	reload := func() {
		t.Helper()
		before := strings.Count(srv.log.String(), "Reloaded server configuration")
		srv.signal(syscall.SIGHUP)
		deadline := time.Now().Add(30 * time.Second)
		for strings.Count(srv.log.String(), "Reloaded server configuration") == before {
			if strings.Contains(srv.log.String(), "Failed to reload") || time.Now().After(deadline) {
				t.Fatalf("nats-server did not reload:\n%s", testkit.Tail(srv.log.String(), 3000))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	capture := connectAs(t, srv.url(), "capture", pw["capture"], "capture")
	if _, err := capture.js.CreateStream(ctx, jetstream.StreamConfig{Name: "ROTATION", Subjects: []string{"rosetta.cdc.rotation.>"}}); err != nil {
		t.Fatalf("capture creates the stream: %v", err)
	}
	if _, err := capture.js.CreateOrUpdateConsumer(ctx, "ROTATION", jetstream.ConsumerConfig{
		Durable: "sink", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 5 * time.Second}); err != nil {
		t.Fatalf("capture creates the consumer: %v", err)
	}
	load := &rotationLoad{seen: map[uint64]bool{}}
	stopPub := load.publish(ctx, capture.js)
	t.Cleanup(stopPub)
	sinkOld := connectAs(t, srv.url(), "sink", pw["sink"], "sink")
	idleOld := connectAs(t, srv.url(), "sink", pw["sink"], "sink")
	tap := connectAs(t, srv.url(), "tap", pw["tap"], "tap")
	stopOld := load.consume(ctx, sinkOld.js)
	t.Cleanup(stopOld)
	load.waitConsumed(t, 50)

	// (a) sink-next next to sink; tap's password changed in place.
	writeAuth(true, true, pw["tap-new"])
	reload()
	tap.waitDisconnected(t, "a password changed in place")
	load.waitConsumed(t, load.consumed()+50)

	// (b) The sink moves to sink-next: it stops (between two fetches,
	// acknowledging what it fetched) and starts with the new user.
	sinkNext := connectAs(t, srv.url(), "sink-next", pw["sink-next"], "sink")
	stopOld()
	sinkOld.nc.Close()
	stopNext := load.consume(ctx, sinkNext.js)
	t.Cleanup(stopNext)
	load.waitConsumed(t, load.consumed()+50)

	// (c) sink removed.
	writeAuth(true, false, pw["tap-new"])
	reload()
	idleOld.waitDisconnected(t, "the user sink removed")
	if nc, err := nats.Connect(srv.url(), nats.UserInfo("sink", pw["sink"])); err == nil {
		nc.Close()
		t.Fatal("sink's password still accepted after its user was removed")
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("connect with sink's old password: %v, want an authorization violation", err)
	}
	load.waitConsumed(t, load.consumed()+50)

	stopPub()
	published := load.published()
	load.waitConsumed(t, published)
	stopNext()
	for _, c := range []*rotationConn{capture, sinkNext} {
		if d := c.disconnects(); len(d) > 0 {
			t.Errorf("%s was disconnected or got errors across the reloads: %v", c.user, d)
		}
	}
	if f := load.failures(); len(f) > 0 {
		t.Fatalf("%d publishes or fetches failed during the rotation, first: %s", len(f), f[0])
	}
	if got := load.consumed(); got != published {
		t.Fatalf("consumed %d distinct changes of %d published", got, published)
	}
	t.Logf("%d changes published and consumed across the rotation, none failed or lost", published)
}

// TestNATSRotationReplicates rotates the password of a rosetta sink
// process while capture and the sink replicate a workload, with the
// services each on its own user of deploy/nats/auth.conf over TLS: the
// same three steps as TestNATSCredentialRotation, the sink restarted with
// sink-next by SIGTERM. The destination must equal the source, no other
// service may be disconnected, and the sink must run as sink-next.
func TestNATSRotationReplicates(t *testing.T) {
	r := startRoleNATS(t)
	w, wl := setup(t, worldOptions{roles: r}, false, 47)
	base, err := os.ReadFile(filepath.Join(r.dir, "auth.conf"))
	if err != nil {
		t.Fatal(err)
	}
	next := randomHex(t)
	// The lowest cost: this server runs in the race-instrumented test
	// binary, where cost 11 takes longer than the TLS handshake may.
	hash, err := bcrypt.GenerateFromPassword([]byte(next), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	reload := func(withNext, withOld bool) {
		t.Helper()
		conf := rotationAuth(t, string(base), withNext, withOld, string(hash))
		if err := os.WriteFile(filepath.Join(r.dir, "auth.conf"), []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := r.srv.Reload(); err != nil {
			t.Fatalf("reload nats: %v", err)
		}
	}
	w.waitDestRows(t)

	reload(true, true) // (a)
	w.waitDestRows(t)
	pwFile := filepath.Join(t.TempDir(), "sink-next.pw")
	if err := os.WriteFile(pwFile, []byte(next+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// (b) The last of duplicate variables wins (os/exec).
	w.sink.env = append(w.sink.env, "ROSETTA_NATS_USER=sink-next", "ROSETTA_NATS_PASSWORD_FILE="+pwFile)
	w.sigtermAndRestart(w.sink)
	w.waitDestRows(t)
	reload(true, false) // (c)
	if nc, err := nats.Connect(r.url, r.options("sink")...); err == nil {
		nc.Close()
		t.Fatal("sink's password still accepted after its user was removed")
	}
	w.waitDestRows(t)
	finish(t, w, wl, 3*time.Minute) // drains and compares destination rows with the source

	for _, p := range []*proc{w.api, w.capture, w.sink} {
		out := p.log.String()
		if p == w.sink {
			out = out[strings.LastIndex(out, "start sink"):]
		}
		for _, mark := range []string{"nats disconnected", "authorization violation", "connection closed"} {
			if strings.Contains(out, mark) {
				t.Errorf("%s lost its NATS connection during the rotation (%q):\n%s", p.name, mark, testkit.Tail(out, 3000))
				break
			}
		}
	}
	if !w.sink.running() {
		t.Fatal("the sink with sink-next is not running")
	}
}

// waitDestRows waits until the destination's accounts table grew: the
// sink applies changes.
func (w *world) waitDestRows(t *testing.T) {
	t.Helper()
	count := func() int {
		var n int
		conn := w.dstPG.Connect(t, w.destDB)
		defer conn.Close(context.Background())
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM accounts`).Scan(&n); err != nil {
			return -1
		}
		return n
	}
	before := count()
	deadline := time.Now().Add(2 * time.Minute)
	for count() <= before {
		if time.Now().After(deadline) {
			t.Fatalf("the destination did not grow from %d rows in 2 minutes", before)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// rotationAuth is deploy/nats/auth.conf with a user sink-next of the
// sink's permissions and the password hash added (next) and the user sink
// kept or removed (old).
func rotationAuth(t *testing.T, base string, next, old bool, hash string) string {
	t.Helper()
	at := strings.Index(base, "      user: sink\n")
	if at < 0 {
		t.Fatal("deploy/nats/auth.conf has no user sink: update this test")
	}
	start := strings.LastIndex(base[:at], "    {\n")
	end := at + strings.Index(base[at:], "\n    }\n") + len("\n    }\n")
	block := base[start:end]
	nextBlock := replaceOnce(t, block, "user: sink\n", "user: sink-next\n")
	nextBlock = replaceOnce(t, nextBlock, "password: $NATS_SINK_PASSWORD", fmt.Sprintf("password: %q", hash))
	repl := ""
	if old {
		repl = block
	}
	if next {
		repl += nextBlock
	}
	return base[:start] + repl + base[end:]
}

func replaceOnce(t *testing.T, s, old, repl string) string {
	t.Helper()
	if strings.Count(s, old) != 1 {
		t.Fatalf("%q is not once in deploy/nats/auth.conf: update this test", old)
	}
	return strings.Replace(s, old, repl, 1)
}

func randomHex(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// rotationConn is a client connected as one user, recording its
// disconnections and the errors the server sent it.
type rotationConn struct {
	user string
	nc   *nats.Conn
	js   jetstream.JetStream
	mu   sync.Mutex
	errs []string
}

func connectAs(t *testing.T, url, user, password, inboxRole string) *rotationConn {
	t.Helper()
	c := &rotationConn{user: user}
	nc, err := nats.Connect(url, nats.UserInfo(user, password), nats.CustomInboxPrefix(inboxPrefix(inboxRole)),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.errs = append(c.errs, fmt.Sprint(err))
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.errs = append(c.errs, fmt.Sprint(err))
		}))
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	if c.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	c.nc = nc
	return c
}

func (c *rotationConn) disconnects() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.errs...)
}

// waitDisconnected waits until the server cut the connection for an
// authorization violation.
func (c *rotationConn) waitDisconnected(t *testing.T, why string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, e := range c.disconnects() {
			if strings.Contains(e, "authorization violation") {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's connection survived %s (disconnections: %v)", c.user, why, c.disconnects())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rotationLoad publishes changes and consumes them, recording the
// stream sequences consumed and every failed request.
type rotationLoad struct {
	mu    sync.Mutex
	last  uint64
	seen  map[uint64]bool
	fails []string
}

func (l *rotationLoad) fail(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fails = append(l.fails, fmt.Sprintf(format, args...))
}

// publish publishes a change every 2 ms until the returned stop is called.
func (l *rotationLoad) publish(ctx context.Context, js jetstream.JetStream) (stop func()) {
	return l.loop(func() {
		ack, err := js.Publish(ctx, "rosetta.cdc.rotation.t", []byte(`{"op":"c"}`))
		if err != nil {
			l.fail("publish: %v", err)
			return
		}
		l.mu.Lock()
		l.last = max(l.last, ack.Sequence)
		l.mu.Unlock()
		time.Sleep(2 * time.Millisecond) // pacing, on a shared machine
	})
}

// consume fetches from the sink's consumer and acknowledges each change
// (confirmed by the server) until the returned stop is called, which
// returns between two fetches.
func (l *rotationLoad) consume(ctx context.Context, js jetstream.JetStream) (stop func()) {
	var cons jetstream.Consumer
	return l.loop(func() {
		if cons == nil {
			c, err := js.Consumer(ctx, "ROTATION", "sink")
			if err != nil {
				l.fail("consumer info: %v", err)
				return
			}
			cons = c
		}
		batch, err := cons.Fetch(50, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			l.fail("fetch: %v", err)
			return
		}
		for msg := range batch.Messages() {
			meta, err := msg.Metadata()
			if err != nil {
				l.fail("metadata: %v", err)
				continue
			}
			if err := msg.DoubleAck(ctx); err != nil {
				l.fail("ack %d: %v", meta.Sequence.Stream, err)
				continue
			}
			l.mu.Lock()
			l.seen[meta.Sequence.Stream] = true
			l.mu.Unlock()
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			l.fail("fetch: %v", err)
		}
	})
}

// loop runs step until stop is called; stop waits for the step running.
func (l *rotationLoad) loop(step func()) (stop func()) {
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		for {
			select {
			case <-done:
				return
			default:
				step()
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); <-exited }) }
}

func (l *rotationLoad) consumed() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.seen)
}

func (l *rotationLoad) published() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int(l.last)
}

func (l *rotationLoad) failures() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.fails...)
}

// waitConsumed waits until n distinct changes were consumed.
func (l *rotationLoad) waitConsumed(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for l.consumed() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d changes consumed of %d expected in 60s; failures: %v", l.consumed(), n, l.failures())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
