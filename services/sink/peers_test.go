package sink

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// TestPeers: instances running a destination count each other, and each
// one's share of the partitions follows; a stopped runner and a stopped
// instance stop counting at once.
func TestPeers(t *testing.T) {
	n := testkit.StartNATS(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := func(name string) (*peers, context.CancelFunc) {
		nc, _ := n.Connect(t)
		pctx, stop := context.WithCancel(ctx)
		return startPeers(pctx, nc, name, log), stop
	}
	a, _ := start("a")
	b, stopB := start("b")
	c, _ := start("c")
	shareA := a.share(7, 4)
	if got := shareA(); got != 4 {
		t.Fatalf("alone: share %d, want 4", got)
	}
	leaveA := a.join(7)
	b.join(7)
	c.join(8) // another destination: not counted for 7
	waitShare(t, shareA, 2, "a and b run destination 7")
	leaveA()
	leaveA = a.join(7)
	defer leaveA()
	waitShare(t, shareA, 2, "a joined again")
	stopB()
	waitShare(t, shareA, 4, "b stopped")
	if a.share(7, 1) != nil {
		t.Fatal("one partition needs no share")
	}
	var none *peers
	if none.share(7, 4) != nil {
		t.Fatal("no peers: want no limit")
	}
	none.join(7)()
}

func waitShare(t *testing.T, share func() int, want int, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for share() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: share %d, want %d", what, share(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
