package capture

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/pkg/natsx"
)

// ackTracker decides how far the slot may be confirmed. It keeps, in
// replication order, the transactions whose changes were published and the
// publishes JetStream has not acknowledged yet. The confirmed position
// moves to a transaction's commit end LSN only once that transaction is
// committed and every publish of it and of all earlier transactions was
// acknowledged: JetStream then holds every change before that position,
// so PostgreSQL may release the WAL and never send those transactions
// again.
//
// It is owned by one goroutine (the worker's replication loop).
type ackTracker struct {
	confirmed pglogrepl.LSN
	txs       []*trackedTx            // oldest first; the last one may be open
	pubs      *natsx.Acks[*trackedTx] // unsettled publishes, oldest first, each with its transaction
	stored    int                     // publishes JetStream stored (not as duplicates) since the tracker was made

	// durability is how long after its last acknowledgement a transaction
	// becomes confirmable. JetStream acknowledges a message once it is
	// written, and fsyncs on an interval: confirming only what was
	// acknowledged at least one fsync interval ago means PostgreSQL never
	// releases WAL whose changes a power loss could still take from
	// JetStream. Zero when JetStream fsyncs before acknowledging.
	durability time.Duration
	now        func() time.Time
}

type trackedTx struct {
	end         pglogrepl.LSN // commit end LSN; 0 while open
	committed   bool
	outstanding int
	settledAt   time.Time // when the last publish was acknowledged (or the commit, if later)
}

func newAckTracker(confirmed pglogrepl.LSN, durability time.Duration) *ackTracker {
	a := &ackTracker{confirmed: confirmed, durability: durability, now: time.Now}
	a.pubs = natsx.NewAcks(a.settle)
	return a
}

// begin opens a transaction; publishes until commit belong to it.
func (a *ackTracker) begin() {
	a.txs = append(a.txs, &trackedTx{})
}

// publishing counts a publish, about to be added to pubs, against the
// open transaction and returns that transaction (the publish's tag), or
// nil when none is open.
func (a *ackTracker) publishing() *trackedTx {
	tx := a.open()
	if tx != nil {
		tx.outstanding++
	}
	return tx
}

func errNoOpenTx(what string) error {
	return fmt.Errorf("track publish of %s: no open transaction", what)
}

// commit closes the open transaction at its commit end LSN.
func (a *ackTracker) commit(end pglogrepl.LSN) error {
	tx := a.open()
	if tx == nil {
		return fmt.Errorf("track commit at %s: no open transaction", end)
	}
	tx.end, tx.committed = end, true
	if tx.outstanding == 0 {
		tx.settledAt = a.now()
	}
	a.advance()
	return nil
}

func (a *ackTracker) open() *trackedTx {
	if n := len(a.txs); n > 0 && !a.txs[n-1].committed {
		return a.txs[n-1]
	}
	return nil
}

// inFlight is the number of publishes not yet acknowledged.
func (a *ackTracker) inFlight() int { return a.pubs.InFlight() }

// idle reports whether nothing is in flight: no open transaction and no
// transaction waiting for acks.
func (a *ackTracker) idle() bool { return len(a.txs) == 0 }

// observeIdle moves the confirmed position to lsn, a keepalive's server WAL
// end, when nothing is in flight: every transaction PostgreSQL sent before
// that keepalive is acknowledged, and a transaction still running on the
// source commits after lsn, so it will still be sent. Idle tables thus do
// not hold WAL on the source.
//
// A streamed transaction (see spool.go) that has not committed yet is not
// in the tracker (it enters at its commit's replay), so it does not stop
// this, and that is still right: its commit record comes after lsn
// (PostgreSQL sends a commit before any keepalive reporting a position
// past it), and confirming only skips transactions that committed before
// the confirmed position. The slot's restart_lsn, which decides what WAL
// PostgreSQL keeps, is held back by the running transaction itself, not by
// the confirmed position. So after a restart PostgreSQL decodes the
// transaction again from its first record and sends it whole (streamed
// again from its start, into a new session's spool).
func (a *ackTracker) observeIdle(lsn pglogrepl.LSN) {
	if a.idle() && lsn > a.confirmed {
		a.confirmed = lsn
	}
}

// poll takes in every acknowledgement that has arrived, oldest first, and
// advances the confirmed position. It returns the first publish error, or
// an error when the oldest publish has waited longer than timeout. After
// an error the tracker must not be used again: the session restarts from
// the confirmed position.
func (a *ackTracker) poll(now time.Time, timeout time.Duration) error {
	if err := a.pubs.Poll(now, timeout); err != nil {
		return err
	}
	a.advance()
	return nil
}

// waitOldest blocks until the oldest unacknowledged publish is resolved,
// then polls. It returns the publish error, ctx's error, or a timeout.
func (a *ackTracker) waitOldest(ctx context.Context, timeout time.Duration) error {
	if err := a.pubs.WaitOldest(ctx, timeout); err != nil {
		return err
	}
	a.advance()
	return nil
}

// settle counts a publish of tx as acknowledged by ack.
func (a *ackTracker) settle(tx *trackedTx, ack *jetstream.PubAck) {
	if ack == nil || !ack.Duplicate {
		a.stored++
	}
	tx.outstanding--
	if tx.outstanding == 0 {
		tx.settledAt = a.now()
	}
}

// advance pops fully acknowledged, committed transactions from the front.
// This is the only place the confirmed position moves past published
// changes: to a transaction's commit end LSN once it and every earlier
// transaction are fully acknowledged by JetStream, and (see durability)
// have stayed so for one fsync interval.
func (a *ackTracker) advance() {
	i := 0
	now := a.now()
	for ; i < len(a.txs); i++ {
		tx := a.txs[i]
		if !tx.committed || tx.outstanding > 0 {
			break
		}
		if a.durability > 0 && now.Sub(tx.settledAt) < a.durability {
			break
		}
		if tx.end > a.confirmed {
			a.confirmed = tx.end
		}
	}
	if i > 0 {
		n := copy(a.txs, a.txs[i:])
		clear(a.txs[n:])
		a.txs = a.txs[:n]
	}
}
