package faults

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// natsNode is one nats-server process of a JetStream cluster; it keeps its
// ports, configuration file and store directory across restarts.
type natsNode struct {
	*natsServer
	name string
}

// natsCluster is three (or size) nats-server processes on loopback forming
// one JetStream cluster: a cluster block with routes to every node, each
// node its own store directory.
type natsCluster struct {
	nodes []*natsNode
}

// clientURLs is every node's client URL, comma-separated, as
// ROSETTA_NATS_URL takes them.
func (c *natsCluster) clientURLs() string {
	urls := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		urls[i] = n.url()
	}
	return strings.Join(urls, ",")
}

// node is the node named name (as JetStream's cluster info names it).
func (c *natsCluster) node(name string) *natsNode {
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

const natsClusterConf = `server_name: %s
listen: 127.0.0.1:%d
jetstream {
  store_dir: %q
}
cluster {
  name: rosetta-faults
  listen: 127.0.0.1:%d
  routes: [%s]
}
`

func startNATSCluster(t *testing.T, size int) *natsCluster {
	t.Helper()
	client, route := make([]int, size), make([]int, size)
	routes := make([]string, size)
	for i := range size {
		client[i], route[i] = testkit.FreePort(t), testkit.FreePort(t)
		routes[i] = "nats-route://127.0.0.1:" + strconv.Itoa(route[i])
	}
	c := &natsCluster{}
	for i := range size {
		dir := t.TempDir()
		name := fmt.Sprintf("n%d", i+1)
		conf := filepath.Join(dir, "nats-server.conf")
		body := fmt.Sprintf(natsClusterConf, name, client[i], filepath.Join(dir, "js"), route[i], strings.Join(routes, ", "))
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		n := &natsNode{name: name, natsServer: &natsServer{port: client[i], dir: dir}}
		n.proc = newProc(t, "nats-"+name, nil, bins.natsServer, "-c", conf)
		n.start()
		c.nodes = append(c.nodes, n)
	}
	for _, n := range c.nodes {
		if !n.waitReady(30 * time.Second) {
			t.Fatalf("nats-server %s did not listen on %d:\n%s", n.name, n.port, testkit.Tail(n.log.String(), 4000))
		}
	}
	return c
}

// waitMeta waits until the cluster has a JetStream meta leader: the
// account's JetStream API answers.
func waitMeta(t *testing.T, js jetstream.JetStream, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := js.AccountInfo(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats cluster has no JetStream meta leader after %s: %v", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// replicaState describes the source stream's and its consumers' raft
// groups: "" when each has a leader and every other replica is current
// and online, else what is not.
func (w *world) replicaState(replicas int) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := w.js.Stream(ctx, contracts.StreamName(w.sourceID))
	if err != nil {
		return fmt.Sprintf("stream: %v", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return fmt.Sprintf("stream info: %v", err)
	}
	if msg := groupState("stream", info.Cluster, replicas); msg != "" {
		return msg
	}
	lister := s.ListConsumers(ctx)
	n := 0
	for ci := range lister.Info() {
		n++
		if msg := groupState("consumer "+ci.Name, ci.Cluster, replicas); msg != "" {
			return msg
		}
	}
	if err := lister.Err(); err != nil {
		return fmt.Sprintf("list consumers: %v", err)
	}
	if n == 0 {
		return "no consumers"
	}
	return ""
}

func groupState(what string, c *jetstream.ClusterInfo, replicas int) string {
	if c == nil || c.Leader == "" {
		return what + " has no leader"
	}
	if len(c.Replicas) != replicas-1 {
		return fmt.Sprintf("%s (leader %s) has %d other replicas, want %d", what, c.Leader, len(c.Replicas), replicas-1)
	}
	for _, r := range c.Replicas {
		if !r.Current || r.Offline {
			return fmt.Sprintf("%s (leader %s): replica %s current=%t offline=%t lag %d", what, c.Leader, r.Name, r.Current, r.Offline, r.Lag)
		}
	}
	return ""
}

// waitReplicasCurrent waits until the stream and its consumers each have a
// leader and every replica current; it returns how long that took.
func (w *world) waitReplicasCurrent(replicas int, timeout time.Duration) time.Duration {
	w.t.Helper()
	start := time.Now()
	for {
		msg := w.replicaState(replicas)
		if msg == "" {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			w.t.Fatalf("stream replicas not current within %s: %s", timeout, msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// streamLeader is the name of the node leading the source's stream.
func (w *world) streamLeader() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := w.js.Stream(ctx, contracts.StreamName(w.sourceID))
	if err != nil {
		return ""
	}
	info, err := s.Info(ctx)
	if err != nil || info.Cluster == nil {
		return ""
	}
	return info.Cluster.Leader
}
