package natsx

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
)

// TestEmbeddedAuth: the embedded server of `rosetta dev` admits only its
// generated users; the tap user reads changes and can change nothing.
func TestEmbeddedAuth(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dataDir := t.TempDir()
	creds, err := LoadOrCreateDevCredentials(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dataDir, CredentialsFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	again, err := LoadOrCreateDevCredentials(dataDir)
	if err != nil || again != creds {
		t.Fatalf("second load = %+v, %v; want the same credentials", again, err)
	}
	e, err := StartEmbedded(EmbeddedConfig{Dir: t.TempDir(), Port: -1, Users: creds.Users()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	url := e.ClientURL()

	if nc, err := nats.Connect(url); err == nil {
		nc.Close()
		t.Fatal("an anonymous client was admitted")
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("anonymous connect: err = %v, want an authorization error", err)
	}

	if svc, _, err := Connect(ctx, url, "services", nil); err == nil {
		svc.Close()
		t.Fatal("a client without credentials connected through Connect")
	}
	svc, svcJS, err := ConnectWith(ctx, url, "services", nil, Liveness{}, creds.Services.Option())
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	stream, err := EnsureSourceStream(ctx, svcJS, 1, StreamLimits{})
	if err != nil {
		t.Fatalf("services user provisions: %v", err)
	}
	// A pipeline's durable consumer: streams keep changes for their
	// consumers (interest retention).
	if _, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "pipeline", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	subject := contracts.ChangeSubject(1, "public", "t", 0)
	if _, err := svcJS.Publish(ctx, subject, []byte(`{}`)); err != nil {
		t.Fatalf("services user publishes a change: %v", err)
	}

	tapOpts, err := TapOptions(dataDir)
	if err != nil || len(tapOpts) != 2 {
		t.Fatalf("TapOptions = %v, %v", tapOpts, err)
	}
	permErrs := make(chan error, 16)
	tapOpts = append(tapOpts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { permErrs <- err }))
	tap, err := nats.Connect(url, tapOpts...)
	if err != nil {
		t.Fatalf("tap connect: %v", err)
	}
	defer tap.Close()
	tapJS, err := jetstream.New(tap)
	if err != nil {
		t.Fatal(err)
	}

	// Reading works: an ephemeral consumer from the start of the stream.
	oc, err := CreateEphemeral(ctx, tapJS, stream.CachedInfo().Config.Name, jetstream.ConsumerConfig{AckPolicy: jetstream.AckNonePolicy})
	if err != nil {
		t.Fatalf("tap ephemeral consumer: %v", err)
	}
	if _, err := oc.Next(jetstream.FetchMaxWait(5 * time.Second)); err != nil {
		t.Fatalf("tap reads a change: %v", err)
	}

	// Writing does not.
	if err := tap.Publish(subject, []byte(`{"forged":true}`)); err != nil {
		t.Fatal(err)
	}
	if err := tap.Publish(contracts.ConfigEvent{}.Subject(), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case err := <-permErrs:
			if !errors.Is(err, nats.ErrPermissionViolation) {
				t.Fatalf("tap publish: async err = %v, want a permissions violation", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("tap publish to a change or config subject raised no permissions violation")
		}
	}
	// Nor does reading the services' replies (default inbox prefix).
	if _, err := tap.SubscribeSync(nats.InboxPrefix + ">"); err != nil {
		t.Fatal(err)
	}
	if err := tap.FlushWithContext(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-permErrs:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Fatalf("tap subscribing to the services' inboxes: %v, want a permissions violation", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the tap may subscribe to the services' inboxes")
	}
	info, err := stream.Info(ctx)
	if err != nil || info.State.Msgs != 1 {
		t.Fatalf("stream after the tap's publish: %+v, %v; want the one change", info.State, err)
	}

	short, cancelShort := context.WithTimeout(ctx, 3*time.Second)
	defer cancelShort()
	name := stream.CachedInfo().Config.Name
	if err := tapJS.DeleteStream(short, name); err == nil {
		t.Fatal("tap deleted the stream")
	}
	if err := tapJS.DeleteConsumer(short, name, oc.CachedInfo().Name); err == nil {
		t.Fatal("tap deleted a consumer")
	}
	assertNoDurable(t, ctx, tap, tapJS, svcJS, name)
	if _, err := svcJS.Stream(ctx, name); err != nil {
		t.Fatalf("stream after the tap's attempts: %v", err)
	}
}

// assertNoDurable checks that the tap connection cannot create a durable
// consumer on stream by any of the create subjects, and that none exists
// afterwards (svcJS lists them with full rights).
func assertNoDurable(t *testing.T, ctx context.Context, tap *nats.Conn, tapJS, svcJS jetstream.JetStream, stream string) {
	t.Helper()
	short, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := tapJS.CreateConsumer(short, stream, jetstream.ConsumerConfig{Durable: "mine", AckPolicy: jetstream.AckExplicitPolicy}); err == nil {
		t.Fatal("tap created a durable consumer through the named create subject")
	}
	body := []byte(`{"stream_name":"` + stream + `","config":{"durable_name":"mine","ack_policy":"explicit"}}`)
	for _, subj := range []string{
		"$JS.API.CONSUMER.DURABLE.CREATE." + stream + ".mine",
		"$JS.API.CONSUMER.CREATE." + stream + ".mine",
		EphemeralCreateSubject(stream), // allowed; the server refuses the durable name
	} {
		msg, err := tap.Request(subj, body, 2*time.Second)
		if err == nil && !strings.Contains(string(msg.Data), `"error"`) {
			t.Fatalf("tap created a durable through %s: %s", subj, msg.Data)
		}
	}
	if _, err := svcJS.Consumer(ctx, stream, "mine"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("the durable the tap asked for: %v, want consumer not found", err)
	}
}
