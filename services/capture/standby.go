package capture

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rosettacdc/rosetta/pkg/pgrepl"
)

// Failover between capture instances rests on PostgreSQL admitting one
// walsender per replication slot: every instance runs a worker for every
// source, the one whose START_REPLICATION succeeds is the source's active
// capture, and the others are its standbys, retrying every
// TakeoverInterval. No lease of Rosetta's own is needed, and two instances
// can never both publish a source's changes: the slot is the lock, held
// exactly as long as the walsender's connection lives. The active one lets
// it go when it dies (the kernel closes its connection), when PostgreSQL
// drops it (wal_sender_timeout) and when it cannot publish: a publish that
// JetStream does not acknowledge within AckTimeout ends the session, which
// closes the replication connection (docs/architecture.md, "Scaling out").

// sqlstateObjectInUse is PostgreSQL's error for "replication slot … is
// active for PID …".
const sqlstateObjectInUse = "55006"

// errSlotActive is a session's finding, before it provisions anything, that
// a walsender already uses the slot (pg_replication_slots.active).
var errSlotActive = errors.New("replication slot is active")

// slotHeldElsewhere reports whether err says another walsender uses the
// slot: this instance is a standby for the source.
func slotHeldElsewhere(err error) bool {
	var pgErr *pgconn.PgError
	return errors.Is(err, errSlotActive) || errors.As(err, &pgErr) && pgErr.Code == sqlstateObjectInUse
}

// watchSlot is the wait before a worker retries after an error it got
// before holding the slot: d, the error backoff, during which it looks at
// the slot every TakeoverInterval. It returns true as soon as a walsender
// holds the slot (another instance took it: this worker is its standby),
// false once d passed or ctx ended.
//
// Why: the backoff doubles to BackoffMax (30 s) so that failing attempts
// do not hammer the source or NATS, but a worker that failed while the
// slot was free (a JetStream request during a leader election), and saw
// another instance take the slot meanwhile, would sit out that backoff as
// that instance's only standby and miss the slot coming free again: a
// takeover took 21.95 s in faults NATSCluster (issue 19). Another
// instance holding the slot shows that capturing works for someone, so
// the worker turns standby at once (run's standby loop: a connection and
// two queries per TakeoverInterval, no NATS). While nobody holds the slot
// the backoff runs out as before: nothing says the cause went away.
// Capping every such wait at TakeoverInterval would make takeovers as
// quick but turn a source or NATS outage into an error, a log line and a
// state write per second per source. A session that held the slot and
// failed keeps the plain backoff (run): its standbys take over, and it
// must not win the slot back every second from a broken NATS. The look
// costs one connection for the whole wait; if it cannot be had, the wait
// is plain.
func (w *worker) watchSlot(ctx context.Context, d time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			closeConn(conn)
		}
	}()
	tick := time.NewTicker(w.cfg.TakeoverInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
		held, c, err := w.slotActive(ctx, conn)
		conn = c
		if held {
			return true
		}
		if err != nil {
			w.log.Debug("look at the replication slot while waiting to retry", "error", err)
			<-ctx.Done()
			return false
		}
	}
}

// slotActive reports whether a walsender uses the worker's slot, on conn,
// or on a new connection (returned) when conn is nil.
func (w *worker) slotActive(ctx context.Context, conn *pgx.Conn) (bool, *pgx.Conn, error) {
	src := w.currentSpec().Source
	if conn == nil {
		var err error
		if conn, err = connectQuery(ctx, src, w.cfg.ConnectTimeout); err != nil {
			return false, nil, err
		}
	}
	qctx, cancel := context.WithTimeout(ctx, w.cfg.ConnectTimeout)
	defer cancel()
	slot, found, err := pgrepl.ReadSlot(qctx, conn, src.Slot)
	return found && slot.Active, conn, err
}
