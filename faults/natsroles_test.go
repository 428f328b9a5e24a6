package faults

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// roles are the users of deploy/nats/auth.conf.
var roles = []string{"capture", "backfill", "sink", "api", "tap"}

// startRoleNATS loads deploy/nats/auth.conf, with generated passwords, into
// an in-process server that requires TLS with client certificates from a
// CA made for the test. It returns the server's URL and, per role, the
// environment of a service connecting as that role.
func startRoleNATS(t *testing.T) *roleNATS {
	t.Helper()
	ca := testkit.NewCA(t)
	srvCert := ca.Issue(t, "nats", "127.0.0.1", "localhost")
	client := ca.Issue(t, "rosetta")
	dir := t.TempDir()
	auth, err := os.ReadFile(filepath.Join("..", "deploy", "nats", "auth.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "auth.conf"), auth, 0o600); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`host: 127.0.0.1
port: -1
max_payload: 8MB
jetstream { store_dir: %q }
include ./auth.conf
tls { cert_file: %q, key_file: %q, ca_file: %q, verify: true, timeout: 5 }
`, filepath.Join(dir, "js"), srvCert.CertFile, srvCert.KeyFile, ca.CertFile)
	confFile := filepath.Join(dir, "nats-server.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &roleNATS{env: map[string][]string{}}
	passwords := map[string]string{}
	for _, role := range roles {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		passwords[role] = hex.EncodeToString(b)
		// The config reads passwords from the server's environment.
		t.Setenv("NATS_"+strings.ToUpper(role)+"_PASSWORD", passwords[role])
		pwFile := filepath.Join(dir, role+".pw")
		if err := os.WriteFile(pwFile, []byte(passwords[role]+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		r.env[role] = []string{
			"ROSETTA_NATS_USER=" + role, "ROSETTA_NATS_PASSWORD_FILE=" + pwFile,
			"ROSETTA_NATS_INBOX_PREFIX=" + inboxPrefix(role),
			"ROSETTA_NATS_TLS_CA=" + ca.CertFile, "ROSETTA_NATS_TLS_CERT=" + client.CertFile, "ROSETTA_NATS_TLS_KEY=" + client.KeyFile,
		}
	}
	opts, err := server.ProcessConfigFile(confFile)
	if err != nil {
		t.Fatalf("load deploy/nats/auth.conf: %v", err)
	}
	opts.NoSigs = true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		t.Fatal("nats server with deploy/nats/auth.conf not ready")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	r.url = srv.ClientURL()
	r.srv, r.dir = srv, dir
	r.passwords = passwords
	r.ca, r.client = ca, client
	// The observer reads stream and consumer state as the tap.
	r.observer = r.options("tap")
	return r
}

// inboxPrefix is role's inbox prefix, the one its user may subscribe to
// (deploy/nats/auth.conf).
func inboxPrefix(role string) string { return "_INBOX_rosetta_" + role }

// options connect as role over TLS with the client certificate and the
// role's inbox prefix.
func (r *roleNATS) options(role string) []nats.Option {
	return []nats.Option{
		nats.UserInfo(role, r.passwords[role]),
		nats.CustomInboxPrefix(inboxPrefix(role)),
		nats.RootCAs(r.ca.CertFile),
		nats.ClientCert(r.client.CertFile, r.client.KeyFile),
	}
}

// TestNATSRoles: Rosetta's services, each with its own user of
// deploy/nats/auth.conf, replicate rows end to end; a sink's credentials
// cannot publish a change, and a tap's cannot delete a stream or create a
// durable consumer.
func TestNATSRoles(t *testing.T) {
	r := startRoleNATS(t)
	w, wl := setup(t, worldOptions{roles: r}, false, 41)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	stream := contracts.StreamName(w.sourceID)

	connect := func(role string) (*nats.Conn, jetstream.JetStream, chan error) {
		errs := make(chan error, 16)
		opts := append(r.options(role), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
		nc, err := nats.Connect(r.url, opts...)
		if err != nil {
			t.Fatalf("connect as %s: %v", role, err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		return nc, js, errs
	}

	// What a tap may do: read changes, through an ephemeral consumer.
	tap, tapJS, _ := connect("tap")
	cons, err := natsx.CreateEphemeral(ctx, tapJS, stream, jetstream.ConsumerConfig{AckPolicy: jetstream.AckNonePolicy})
	if err != nil {
		t.Fatalf("tap ephemeral consumer: %v", err)
	}
	if _, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second)); err != nil {
		t.Fatalf("tap reads a change: %v", err)
	}
	time.Sleep(5 * time.Second)
	finish(t, w, wl, 3*time.Minute) // drains and compares destination rows with the source
	before := w.streamLastSeq()

	// A sink forges a change: refused.
	sink, sinkJS, sinkErrs := connect("sink")
	if err := sink.Publish(contracts.ChangeSubject(w.sourceID, "public", "accounts", 0), []byte(`{"forged":true}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-sinkErrs:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Fatalf("sink publish: %v, want a permissions violation", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the sink's publish to a change subject raised no permissions violation")
	}
	if after := w.streamLastSeq(); after != before {
		t.Fatalf("stream last sequence %d -> %d after the sink's forged change", before, after)
	}
	// A stopping sink releases its partitions' pins: allowed.
	if err := natsx.Unpinner(sinkJS)(ctx, stream, contracts.ConsumerName(w.pipelineID, w.destID)); err != nil {
		t.Fatalf("the sink's unpin of its consumer: %v", err)
	}

	// A tap deletes the stream, or creates a durable: refused.
	short, cancelShort := context.WithTimeout(ctx, 3*time.Second)
	defer cancelShort()
	if err := tapJS.DeleteStream(short, stream); err == nil {
		t.Fatal("the tap deleted the stream")
	}
	if _, err := tapJS.CreateConsumer(short, stream, jetstream.ConsumerConfig{Durable: "mine", AckPolicy: jetstream.AckExplicitPolicy}); err == nil {
		t.Fatal("the tap created a durable consumer")
	}
	body := []byte(`{"stream_name":"` + stream + `","config":{"durable_name":"mine","ack_policy":"explicit"}}`)
	for _, subj := range []string{
		"$JS.API.CONSUMER.DURABLE.CREATE." + stream + ".mine",
		"$JS.API.CONSUMER.CREATE." + stream + ".mine",
		natsx.EphemeralCreateSubject(stream), // allowed, but the server refuses a durable name on it
	} {
		if msg, err := tap.Request(subj, body, 2*time.Second); err == nil && !strings.Contains(string(msg.Data), `"error"`) {
			t.Fatalf("the tap created a durable through %s: %s", subj, msg.Data)
		}
	}
	if _, err := w.js.Consumer(ctx, stream, "mine"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("durable the tap asked for: %v, want not found", err)
	}
	if _, err := w.js.Stream(ctx, stream); err != nil {
		t.Fatalf("stream after the tap's attempts: %v", err)
	}
}

// TestNATSRoleInboxes: with deploy/nats/auth.conf each role gets JetStream
// API answers on its own inbox prefix, and may subscribe neither to
// another role's inbox prefix nor to nats.go's default "_INBOX.>", so no
// role reads another's replies (fetched rows, DuckDB query results).
func TestNATSRoleInboxes(t *testing.T) {
	r := startRoleNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, role := range roles {
		t.Run(role, func(t *testing.T) {
			errs := make(chan error, 16)
			nc, err := nats.Connect(r.url, append(r.options(role),
				nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))...)
			if err != nil {
				t.Fatalf("connect as %s: %v", role, err)
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			// A JetStream API request: its answer comes to the role's inbox.
			if _, err := js.AccountInfo(ctx); err != nil {
				t.Fatalf("%s's JetStream API request with inbox prefix %s: %v", role, inboxPrefix(role), err)
			}
			for _, other := range append(slices.DeleteFunc(slices.Clone(roles), func(o string) bool { return o == role }), "") {
				subject := "_INBOX.>"
				if other != "" {
					subject = inboxPrefix(other) + ".>"
				}
				if _, err := nc.SubscribeSync(subject); err != nil {
					t.Fatal(err)
				}
				// The server answers a refused SUB with an error before
				// the PONG of this flush.
				if err := nc.FlushWithContext(ctx); err != nil {
					t.Fatal(err)
				}
				select {
				case err := <-errs:
					if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), subject) {
						t.Fatalf("%s subscribing to %s: %v, want a permissions violation for it", role, subject, err)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("%s may subscribe to %s: it would read those replies", role, subject)
				}
			}
		})
	}
}
