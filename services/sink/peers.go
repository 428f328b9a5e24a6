package sink

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rosettacdc/rosetta/pkg/natsx"
)

// Sink instances count each other per destination, so that each holds its
// share of a pipeline destination's partitions (sinkrunner's Config.Share).
// Every instance announces the destinations it runs on core NATS subjects
// every peerBeat and forgets an instance not heard of for peerTTL: no
// stream, no lease, nothing to provision. The count only spreads the
// partitions; which instance applies a partition is still decided by the
// consumer's pin, so a count that is briefly wrong costs a partition
// moving twice, not exactness.

// peerSubjects is what instances announce on: <prefix>.<destination>.alive
// while they run it, .gone when they stop.
const peerSubjects = "rosetta.sinks"

// peerBeat is how often an instance announces itself.
const peerBeat = 2 * time.Second

// peerTTL is how long an instance counts after its last announcement:
// four missed beats, and shorter than a dead holder's pins live (the
// pinned TTL from its last pull, which came after its last beat), so the
// survivors stop counting it before they can take its partitions: they
// then keep them all rather than giving one up to nobody.
const peerTTL = natsx.ConsumerPinnedTTL - peerBeat

// peers is this instance's view of the sink instances per destination.
type peers struct {
	nc   *nats.Conn
	self string
	log  *slog.Logger

	mu   sync.Mutex
	seen map[int64]map[string]time.Time // destination → instance → last heard
	runs map[int64]int                  // destinations this instance runs → its runners of them

	done chan struct{} // closed once the goodbye is flushed
}

// startPeers subscribes to the announcements and announces this
// instance's destinations until ctx ends, then says it is gone. A nil
// connection (no NATS) gives a nil *peers, whose shares are unlimited.
func startPeers(ctx context.Context, nc *nats.Conn, self string, log *slog.Logger) *peers {
	if nc == nil {
		return nil
	}
	p := &peers{nc: nc, self: self, log: log, seen: map[int64]map[string]time.Time{}, runs: map[int64]int{},
		done: make(chan struct{})}
	sub, err := nc.Subscribe(peerSubjects+".>", p.heard)
	if err != nil {
		// Without the count each instance takes what it is pinned to,
		// as before sharing existed.
		log.Warn("cannot follow the other sink instances; partitions go to whichever instance pulls first", "error", err)
		return nil
	}
	go func() {
		defer close(p.done)
		t := time.NewTicker(peerBeat)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.announce("alive")
			case <-ctx.Done():
				_ = sub.Unsubscribe()
				p.announce("gone")
				_ = nc.FlushTimeout(time.Second)
				return
			}
		}
	}()
	return p
}

// wait returns once the goodbye is sent (after startPeers' ctx ended), so
// that it leaves before the connection closes: the others take this
// instance's partitions at once instead of counting it for peerTTL.
func (p *peers) wait() {
	if p != nil {
		<-p.done
	}
}

// heard records one announcement.
func (p *peers) heard(m *nats.Msg) {
	rest, ok := strings.CutPrefix(m.Subject, peerSubjects+".")
	if !ok {
		return
	}
	destText, what, ok := strings.Cut(rest, ".")
	dest, err := strconv.ParseInt(destText, 10, 64)
	if !ok || err != nil {
		return
	}
	id := string(m.Data)
	p.mu.Lock()
	defer p.mu.Unlock()
	if what == "gone" {
		delete(p.seen[dest], id)
		return
	}
	if p.seen[dest] == nil {
		p.seen[dest] = map[string]time.Time{}
	}
	p.seen[dest][id] = time.Now()
}

// announce publishes what (alive or gone) for every destination this
// instance runs.
func (p *peers) announce(what string) {
	p.mu.Lock()
	dests := make([]int64, 0, len(p.runs))
	for d := range p.runs {
		dests = append(dests, d)
	}
	p.mu.Unlock()
	for _, d := range dests {
		p.publish(d, what)
	}
}

func (p *peers) publish(dest int64, what string) {
	subj := peerSubjects + "." + strconv.FormatInt(dest, 10) + "." + what
	if err := p.nc.Publish(subj, []byte(p.self)); err != nil {
		p.log.Debug("announce to the other sink instances", "subject", subj, "error", err)
	}
}

// join counts a runner of dest on this instance, announcing it at once;
// the returned function undoes it (announcing gone with the last runner).
func (p *peers) join(dest int64) (leave func()) {
	if p == nil {
		return func() {}
	}
	p.mu.Lock()
	p.runs[dest]++
	p.mu.Unlock()
	p.publish(dest, "alive")
	return func() {
		p.mu.Lock()
		p.runs[dest]--
		last := p.runs[dest] <= 0
		if last {
			delete(p.runs, dest)
		}
		p.mu.Unlock()
		if last {
			p.publish(dest, "gone")
		}
	}
}

// count is how many instances run dest, this one included.
func (p *peers) count(dest int64) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n, self := 0, false
	for id, at := range p.seen[dest] {
		if time.Since(at) > peerTTL {
			delete(p.seen[dest], id)
			continue
		}
		n++
		self = self || id == p.self
	}
	if !self {
		n++ // its own announcement is on its way
	}
	return n
}

// share returns the most of partitions this instance should hold for a
// runner of dest: an even split over the instances running it, rounded up.
// nil (no peers) means no limit.
func (p *peers) share(dest int64, partitions int) func() int {
	if p == nil || partitions <= 1 {
		return nil
	}
	return func() int {
		n := p.count(dest)
		return (partitions + n - 1) / n
	}
}
