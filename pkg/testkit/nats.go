package testkit

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/pkg/natsx"
)

// NATS is an embedded nats-server with JetStream in a temp dir.
type NATS struct {
	*natsx.Embedded
	URL string
	Dir string
}

// StartNATS starts an embedded NATS server on a free port; it is shut down
// when the test ends.
func StartNATS(tb testing.TB) *NATS {
	tb.Helper()
	dir := tb.TempDir()
	e, err := natsx.StartEmbedded(natsx.EmbeddedConfig{Dir: dir, Port: -1}, nil)
	if err != nil {
		tb.Fatalf("testkit: %v", err)
	}
	n := &NATS{Embedded: e, URL: e.ClientURL(), Dir: dir}
	tb.Cleanup(func() { n.Embedded.Shutdown() })
	return n
}

// Connect opens a client connection closed when the test ends.
func (n *NATS) Connect(tb testing.TB) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	nc, js, err := natsx.Connect(ctx, n.URL, tb.Name(), nil)
	if err != nil {
		tb.Fatalf("testkit: %v", err)
	}
	tb.Cleanup(nc.Close)
	return nc, js
}
