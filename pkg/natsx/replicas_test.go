package natsx_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// TestStreamReplicas: on a three-server cluster a stream is created with the
// replicas asked for, a changed count is applied to the existing stream and
// its consumers follow it, and more replicas than servers is refused with
// natsx.ErrTooManyReplicas; a single server refuses any count above one.
func TestStreamReplicas(t *testing.T) {
	ctx := context.Background()
	c := testkit.StartNATSCluster(t, 3)
	_, js := c.Connect(t)

	s, err := natsx.EnsureSourceStream(ctx, js, 4, natsx.StreamLimits{Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r := s.CachedInfo().Config.Replicas; r != 1 {
		t.Fatalf("replicas = %d, want 1", r)
	}
	if _, err := natsx.EnsurePipelineConsumer(ctx, js, 4, 1, 2, []natsx.Table{{Schema: "public", Name: "t"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := natsx.EnsureSourceStream(ctx, js, 4, natsx.StreamLimits{Replicas: 3}); err != nil {
		t.Fatalf("raise to 3: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		si, err := js.Stream(ctx, contracts.StreamName(4))
		if err != nil {
			t.Fatal(err)
		}
		cons, err := si.Consumer(ctx, contracts.ConsumerName(1, 2))
		if err != nil {
			t.Fatal(err)
		}
		info := si.CachedInfo()
		ci := cons.CachedInfo()
		if info.Config.Replicas == 3 && info.Cluster != nil && len(info.Cluster.Replicas) == 2 &&
			ci.Cluster != nil && len(ci.Cluster.Replicas) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after raising to 3: stream config %d, stream cluster %+v, consumer cluster %+v", info.Config.Replicas, info.Cluster, ci.Cluster)
		}
		time.Sleep(200 * time.Millisecond)
	}

	_, err = natsx.EnsureSourceStream(ctx, js, 5, natsx.StreamLimits{Replicas: 5})
	if !errors.Is(err, natsx.ErrTooManyReplicas) || !strings.Contains(err.Error(), "ROSETTA_STREAM_REPLICAS=5") {
		t.Fatalf("5 replicas on 3 servers: %v, want natsx.ErrTooManyReplicas naming the setting", err)
	}

	_, single := testkit.StartNATS(t).Connect(t)
	_, err = natsx.EnsureSourceStream(ctx, single, 6, natsx.StreamLimits{Replicas: 3})
	if !errors.Is(err, natsx.ErrTooManyReplicas) || !strings.Contains(err.Error(), "not part of a JetStream cluster") {
		t.Fatalf("3 replicas on one server: %v, want natsx.ErrTooManyReplicas", err)
	}
}
