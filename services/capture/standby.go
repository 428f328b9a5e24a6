package capture

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
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

// slotHeldElsewhere reports whether err says another walsender uses the
// slot: this instance is a standby for the source.
func slotHeldElsewhere(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == sqlstateObjectInUse
}
