package testkit

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/pkg/natsx"
)

// NATSCluster is a JetStream cluster of in-process nats-servers on
// loopback, each with its own storage in a temp dir.
type NATSCluster struct {
	Servers []*server.Server
	// URL lists every server's client URL, comma-separated, as
	// ROSETTA_NATS_URL takes them.
	URL string
}

// StartNATSCluster starts a cluster of size servers and waits until
// JetStream has a meta leader; the servers are shut down when the test
// ends.
func StartNATSCluster(tb testing.TB, size int) *NATSCluster {
	tb.Helper()
	ports := make([]int, size)
	for i := range ports {
		ports[i] = FreePort(tb)
	}
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	c := &NATSCluster{}
	var urls []string
	for i := range size {
		opts := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       -1,
			JetStream:  true,
			StoreDir:   filepath.Join(tb.TempDir(), "js"),
			NoSigs:     true,
			NoLog:      true,
			Cluster:    server.ClusterOpts{Name: "rosetta-test", Host: "127.0.0.1", Port: ports[i]},
			Routes:     server.RoutesFromStr(strings.Join(routes, ",")),
		}
		s, err := server.NewServer(opts)
		if err != nil {
			tb.Fatalf("testkit: nats cluster server %d: %v", i+1, err)
		}
		go s.Start()
		tb.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
		if !s.ReadyForConnections(30 * time.Second) {
			tb.Fatalf("testkit: nats cluster server %d not ready after 30s", i+1)
		}
		c.Servers = append(c.Servers, s)
		urls = append(urls, s.ClientURL())
	}
	c.URL = strings.Join(urls, ",")
	deadline := time.Now().Add(30 * time.Second)
	for {
		leaders, peers, current := 0, 0, 0
		for _, s := range c.Servers {
			if s.JetStreamIsLeader() {
				leaders++
				peers = len(s.JetStreamClusterPeers()) // known to the leader only
			}
			if s.JetStreamIsCurrent() {
				current++
			}
		}
		if leaders == 1 && peers == size && current == size {
			return c
		}
		if time.Now().After(deadline) {
			tb.Fatal("testkit: nats cluster has no JetStream meta leader after 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Connect opens a client connection to the cluster, closed when the test
// ends.
func (c *NATSCluster) Connect(tb testing.TB) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	nc, js, err := natsx.Connect(ctx, c.URL, tb.Name(), nil)
	if err != nil {
		tb.Fatalf("testkit: %v", err)
	}
	tb.Cleanup(nc.Close)
	return nc, js
}
