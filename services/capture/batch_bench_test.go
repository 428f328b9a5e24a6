package capture

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/pkg/natsx/natsxtest"
)

// BenchmarkBatcher: ns/op is per change, cut into messages and handed to
// a publish that keeps nothing: single-change transactions (a message per
// change, the per-message costs) and transactions of 1000 changes.
func BenchmarkBatcher(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"tx1", 1}, {"tx1000", 1000}} {
		b.Run(size.name, func(b *testing.B) {
			tx := &txChanges{commitLSN: "0/2000"}
			for i := range size.n {
				tx.add("a", colsAB, i, "value of a row")
			}
			bt := newBatcher(4)
			drop := func(*outMsg) error { return nil }
			i := 0
			for b.Loop() {
				if err := bt.add(&tx.out[i]); err != nil {
					b.Fatal(err)
				}
				if i++; i == len(tx.out) {
					bt.commit()
					i = 0
				}
				if err := bt.publish(drop); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAckTracker: ns/op is per publish of single-publish
// transactions, tracked and settled by an acknowledgement already in.
func BenchmarkAckTracker(b *testing.B) {
	a := newAckTracker(1, 0)
	f := natsxtest.NewFuture()
	ack := &jetstream.PubAck{}
	now := time.Now()
	end := a.confirmed
	for b.Loop() {
		a.begin()
		f.AckWith(ack)
		if err := a.add(f, now, "x"); err != nil {
			b.Fatal(err)
		}
		end++
		if err := a.commit(end); err != nil {
			b.Fatal(err)
		}
		if err := a.poll(now, time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}
