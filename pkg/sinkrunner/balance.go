package sinkrunner

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/pkg/natsx"
)

// Spreading partitions over sink instances.
//
// JetStream pins a partition's consumer to the first instance that pulls
// it, so the instance that starts first holds every partition and the
// others stand by. With Config.Share, an instance holding more partitions
// than its share gives the extra ones up, one at a time and only between
// batches: the fetcher stops pulling the partition, lets everything it
// delivered be applied and acked, releases the pin (Config.Unpin), and
// pulls it again only after releasePause, by which time a standby
// instance's waiting pull has been pinned. Exclusivity stays JetStream's:
// the share only decides which instance asks to hold a partition, so a
// wrong share (an instance counted that has died) costs a pause, never two
// holders. The share comes from outside (the sink service counts live
// instances per destination); nil or 0 is no limit.

// releasePause is how long a fetcher that gave its partition up waits
// before pulling it again: several of another instance's pulls
// (pullExpiry) fit in it, so one of them is pinned first.
const releasePause = 2 * time.Second

// releaseCheck is how often a releasing fetcher asks JetStream whether
// every message it delivered is acked.
const releaseCheck = 100 * time.Millisecond

// pinCount counts a runner's fetchers holding their partition's pin.
type pinCount struct{ n atomic.Int32 }

// overFor is how long a runner must hold more than its share before a
// fetcher gives a partition up: views that are wrong for a moment (a
// stopping instance's pins released before its goodbye arrives) move
// nothing.
const overFor = time.Second

// pinState is one fetcher's view of its partition's pin. counted says
// whether it counts in the runner's pinCount: a fetcher that decided to
// give its pin up stops counting at once, so that its siblings do not give
// theirs up too. over is when this fetcher first saw the runner above its
// share, zero while it is not.
type pinState struct {
	pinned, counted, releasing bool
	over                       time.Time
	id                         string // the pin id JetStream sent last
}

// held records a delivery that carried pin id.
func (s *pinState) held(c *pinCount, id string) {
	s.pinned, s.id = true, id
	if !s.counted && !s.releasing {
		s.counted = true
		c.n.Add(1)
	}
}

// lost records that the pin is no longer this fetcher's.
func (s *pinState) lost(c *pinCount) {
	s.pinned, s.releasing = false, false
	if s.counted {
		s.counted = false
		c.n.Add(-1)
	}
}

// overShare reports whether this fetcher should give its pin up: it holds
// it, and the runner has held more than share for overFor. It claims the
// decrement, so only as many fetchers as are over the share give theirs
// up.
func (s *pinState) overShare(c *pinCount, share func() int) bool {
	if share == nil || !s.counted || s.releasing {
		return false
	}
	limit := share()
	for {
		n := c.n.Load()
		if limit <= 0 || int(n) <= limit {
			s.over = time.Time{}
			return false
		}
		if s.over.IsZero() {
			s.over = time.Now()
		}
		if time.Since(s.over) < overFor {
			return false
		}
		if c.n.CompareAndSwap(n, n-1) {
			s.counted, s.releasing, s.over = false, true, time.Time{}
			return true
		}
	}
}

// pinnedTo is the client the consumer's sink group is pinned to, "" when
// none.
func pinnedTo(info *jetstream.ConsumerInfo) string {
	for _, g := range info.PriorityGroups {
		if g.Group == natsx.SinkGroup {
			return g.PinnedClientID
		}
	}
	return ""
}

// settled reports whether cons has no message delivered and not yet acked:
// what this fetcher handed over is applied.
func settled(ctx context.Context, cons jetstream.Consumer) bool {
	ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	info, err := cons.Info(ictx)
	return err == nil && info.NumAckPending == 0
}
