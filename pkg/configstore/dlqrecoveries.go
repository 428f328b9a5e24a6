package configstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// RecoveryStatus is where a dead-letter queue recovery is.
type RecoveryStatus string

const (
	// RecoveryPending waits for a sink running its pipeline destination.
	RecoveryPending RecoveryStatus = "PENDING"
	// RecoveryRunning is being replayed by the sink named in Worker.
	RecoveryRunning RecoveryStatus = "RUNNING"
	// RecoveryCompleted replayed every entry it was asked to (some may
	// have failed again; see Failed).
	RecoveryCompleted RecoveryStatus = "COMPLETED"
	// RecoveryFailed stopped on an error (LastError); its entries stay in
	// the queue.
	RecoveryFailed RecoveryStatus = "FAILED"
)

// DLQRecovery is a request to replay a pipeline destination's dead-letter
// queue, and its progress. A sink instance claims it for a lease, replays,
// and records the outcome (see pkg/dlq and services/sink).
type DLQRecovery struct {
	ID            int64
	PipelineID    int64
	DestinationID int64
	// Table limits the replay to one table (schema.table); empty is every
	// table.
	Table string
	// MaxCount is the most entries handled; 0 is every entry present.
	MaxCount int64
	Status   RecoveryStatus
	// Replayed and Failed count entries applied and removed, and entries
	// that failed again, over every run.
	Replayed  int64
	Failed    int64
	LastError string
	// Worker names the sink instance holding the claim until LeaseUntil.
	Worker     string
	LeaseUntil time.Time
	// Runs counts claims: more than one when a run was interrupted.
	Runs       int
	CreatedAt  time.Time
	StartedAt  time.Time // zero until first claimed
	FinishedAt time.Time // zero until COMPLETED or FAILED
	UpdatedAt  time.Time
}

// DLQRecoveryInput is what the API records.
type DLQRecoveryInput struct {
	PipelineID    int64
	DestinationID int64
	Table         string
	MaxCount      int64
}

// PipelineDestination names one destination of one pipeline.
type PipelineDestination struct {
	PipelineID    int64
	DestinationID int64
}

// dlqClaimLockKey serializes claims, so that two sink instances never both
// see "no recovery running for this destination" and start one each.
const dlqClaimLockKey int64 = 0x726f736474 // "rosdt"

const recoveryColumns = `id, pipeline_id, destination_id, COALESCE(table_name, ''), COALESCE(max_count, 0), status,
	replayed, failed, last_error, worker, lease_until, runs, created_at, started_at, finished_at, updated_at`

const recoverySelect = `SELECT ` + recoveryColumns + ` FROM dlq_recoveries`

func scanRecovery(row pgx.Row) (DLQRecovery, error) {
	var r DLQRecovery
	var status string
	var lease, started, finished *time.Time
	if err := row.Scan(&r.ID, &r.PipelineID, &r.DestinationID, &r.Table, &r.MaxCount, &status, &r.Replayed, &r.Failed,
		&r.LastError, &r.Worker, &lease, &r.Runs, &r.CreatedAt, &started, &finished, &r.UpdatedAt); err != nil {
		return DLQRecovery{}, err
	}
	r.Status = RecoveryStatus(status)
	for _, p := range []struct {
		src *time.Time
		dst *time.Time
	}{{lease, &r.LeaseUntil}, {started, &r.StartedAt}, {finished, &r.FinishedAt}} {
		if p.src != nil {
			*p.dst = *p.src
		}
	}
	return r, nil
}

// CreateDLQRecovery records a PENDING recovery. It returns an error
// wrapping ErrNotFound when the destination is not in the pipeline, and a
// *ConflictError when the pipeline destination already has an unfinished
// recovery.
func (s *Store) CreateDLQRecovery(ctx context.Context, in DLQRecoveryInput) (DLQRecovery, error) {
	var table *string
	if in.Table != "" {
		table = &in.Table
	}
	var maxCount *int64
	if in.MaxCount > 0 {
		maxCount = &in.MaxCount
	}
	r, err := scanRecovery(s.pool.QueryRow(ctx, `INSERT INTO dlq_recoveries (pipeline_id, destination_id, table_name, max_count)
		VALUES ($1, $2, $3, $4) RETURNING `+recoveryColumns, in.PipelineID, in.DestinationID, table, maxCount))
	if pe, ok := pgErr(err); ok {
		switch pe.Code {
		case codeForeignKeyViolation:
			return DLQRecovery{}, fmt.Errorf("destination %d is not in pipeline %d: %w", in.DestinationID, in.PipelineID, ErrNotFound)
		case codeUniqueViolation:
			active, aerr := s.activeRecovery(ctx, in.PipelineID, in.DestinationID)
			msg := fmt.Sprintf("a recovery of pipeline %d destination %d is already pending or running", in.PipelineID, in.DestinationID)
			if aerr == nil {
				msg = fmt.Sprintf("recovery %d of pipeline %d destination %d is already %s; wait for it to finish",
					active.ID, in.PipelineID, in.DestinationID, active.Status)
			}
			return DLQRecovery{}, &ConflictError{Msg: msg}
		}
	}
	if err != nil {
		return DLQRecovery{}, fmt.Errorf("create dlq recovery of pipeline %d destination %d: %w", in.PipelineID, in.DestinationID, err)
	}
	return r, nil
}

func (s *Store) activeRecovery(ctx context.Context, pipelineID, destinationID int64) (DLQRecovery, error) {
	return scanRecovery(s.pool.QueryRow(ctx, recoverySelect+` WHERE pipeline_id = $1 AND destination_id = $2
		AND status IN ('PENDING', 'RUNNING')`, pipelineID, destinationID))
}

// GetDLQRecovery returns one recovery, or an error wrapping ErrNotFound.
func (s *Store) GetDLQRecovery(ctx context.Context, id int64) (DLQRecovery, error) {
	r, err := scanRecovery(s.pool.QueryRow(ctx, recoverySelect+` WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return DLQRecovery{}, fmt.Errorf("dlq recovery %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return DLQRecovery{}, fmt.Errorf("read dlq recovery %d: %w", id, err)
	}
	return r, nil
}

// ClaimDLQRecovery gives worker the oldest recovery it may run: PENDING, or
// RUNNING with an expired lease (its worker stopped), of a started pipeline,
// for one of the pipeline destinations in serving, and only when no other
// recovery holds a lease on the same destination (two replays of one
// destination would share its queues). The claim holds for lease; renew it
// with RenewDLQRecovery. ok is false when there is nothing to claim.
func (s *Store) ClaimDLQRecovery(ctx context.Context, worker string, lease time.Duration, serving []PipelineDestination) (r DLQRecovery, ok bool, err error) {
	if len(serving) == 0 {
		return DLQRecovery{}, false, nil
	}
	pids := make([]int64, len(serving))
	dids := make([]int64, len(serving))
	for i, pd := range serving {
		pids[i], dids[i] = pd.PipelineID, pd.DestinationID
	}
	err = s.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, dlqClaimLockKey); err != nil {
			return err
		}
		var id int64
		err := tx.QueryRow(ctx, `SELECT r.id FROM dlq_recoveries r JOIN pipelines p ON p.id = r.pipeline_id
			WHERE p.status = 'START'
			AND (r.status = 'PENDING' OR (r.status = 'RUNNING' AND r.lease_until < now()))
			AND (r.pipeline_id, r.destination_id) IN (SELECT * FROM unnest($1::bigint[], $2::bigint[]))
			AND NOT EXISTS (SELECT 1 FROM dlq_recoveries o WHERE o.destination_id = r.destination_id AND o.id <> r.id
				AND o.status = 'RUNNING' AND o.lease_until >= now())
			ORDER BY r.id LIMIT 1`, pids, dids).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		r, err = scanRecovery(tx.QueryRow(ctx, `UPDATE dlq_recoveries SET status = 'RUNNING', worker = $2,
				lease_until = now() + $3::bigint * interval '1 millisecond', runs = runs + 1,
				started_at = COALESCE(started_at, now()), updated_at = now()
			WHERE id = $1 RETURNING `+recoveryColumns, id, worker, lease.Milliseconds()))
		if err != nil {
			return err
		}
		ok = true
		return nil
	})
	if err != nil {
		return DLQRecovery{}, false, fmt.Errorf("claim dlq recovery for %s: %w", worker, err)
	}
	return r, ok, nil
}

// RenewDLQRecovery extends worker's lease on a RUNNING recovery and records
// its progress (totals over every run). It returns an error wrapping
// ErrNotFound when the recovery is gone or no longer held by worker (its
// lease expired and another claimed it): the worker must stop.
func (s *Store) RenewDLQRecovery(ctx context.Context, id int64, worker string, lease time.Duration, replayed, failed int64) error {
	tag, err := s.pool.Exec(ctx, `UPDATE dlq_recoveries SET lease_until = now() + $3::bigint * interval '1 millisecond',
		replayed = $4, failed = $5, updated_at = now() WHERE id = $1 AND worker = $2 AND status = 'RUNNING'`,
		id, worker, lease.Milliseconds(), replayed, failed)
	if err != nil {
		return fmt.Errorf("renew dlq recovery %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("renew dlq recovery %d: not held by %s: %w", id, worker, ErrNotFound)
	}
	return nil
}

// FinishDLQRecovery records the end of worker's run: COMPLETED or FAILED,
// the totals, and the error (empty when none). ErrNotFound as for Renew.
func (s *Store) FinishDLQRecovery(ctx context.Context, id int64, worker string, status RecoveryStatus, replayed, failed int64, lastError string) error {
	if status != RecoveryCompleted && status != RecoveryFailed {
		return fmt.Errorf("finish dlq recovery %d: status %q is not final", id, status)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE dlq_recoveries SET status = $3, replayed = $4, failed = $5, last_error = $6,
		lease_until = NULL, finished_at = now(), updated_at = now() WHERE id = $1 AND worker = $2 AND status = 'RUNNING'`,
		id, worker, string(status), replayed, failed, lastError)
	if err != nil {
		return fmt.Errorf("finish dlq recovery %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("finish dlq recovery %d: not held by %s: %w", id, worker, ErrNotFound)
	}
	return nil
}

// ReleaseDLQRecovery puts a recovery worker could not finish (it is
// stopping, or its pipeline destination stopped running) back to PENDING
// with its totals, for any sink to claim. note says why, in LastError.
func (s *Store) ReleaseDLQRecovery(ctx context.Context, id int64, worker string, replayed, failed int64, note string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE dlq_recoveries SET status = 'PENDING', worker = '', lease_until = NULL,
		replayed = $3, failed = $4, last_error = $5, updated_at = now() WHERE id = $1 AND worker = $2 AND status = 'RUNNING'`,
		id, worker, replayed, failed, note)
	if err != nil {
		return fmt.Errorf("release dlq recovery %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("release dlq recovery %d: not held by %s: %w", id, worker, ErrNotFound)
	}
	return nil
}
