package configstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// JobStatus is where a backfill job is.
type JobStatus string

const (
	JobPending   JobStatus = "PENDING"   // waits for a worker (or for capture to add its table)
	JobExecuting JobStatus = "EXECUTING" // held by LeaseOwner until LeaseUntil
	JobCompleted JobStatus = "COMPLETED" // every row published and acknowledged
	JobFailed    JobStatus = "FAILED"    // stopped on Error; rows published so far stay published
	JobCancelled JobStatus = "CANCELLED" // stopped by POST /backfill/{id}/cancel
)

// Job kinds.
const (
	JobKindSnapshot = "snapshot" // initial read of a pipeline table
	JobKindBackfill = "backfill" // asked for through the API, or by capture after a table rewrite (docs/types.md)
)

// BackfillFilter is one condition on the rows a backfill reads. Value is
// JSON: a scalar for comparison ops and like, an array for in/not in,
// absent for is null/is not null. The SQL is built by pkg/snapshot, which
// binds values as parameters.
type BackfillFilter struct {
	Column string          `json:"column"`
	Op     string          `json:"op"`
	Value  json.RawMessage `json:"value,omitempty"`
}

// BackfillJob is one snapshot or backfill of one table of a pipeline.
type BackfillJob struct {
	ID             int64
	PipelineID     int64
	Table          string // "schema.table"
	Kind           string
	DestinationIDs []int64
	Filters        []BackfillFilter
	BatchSize      int
	Status         JobStatus
	RowsCopied     int64
	RowsTotal      *int64
	// LastKey is the JSON array of the text values of the primary key of
	// the last row acknowledged by JetStream; nil before the first batch.
	LastKey    json.RawMessage
	Error      string
	LeaseOwner string
	LeaseUntil *time.Time
	Attempts   int
	CreatedAt  time.Time
	StartedAt  *time.Time
	FinishedAt *time.Time
	UpdatedAt  time.Time
}

// BackfillInput is what the API records.
type BackfillInput struct {
	PipelineID     int64
	Table          string
	Kind           string // JobKindBackfill when empty
	DestinationIDs []int64
	Filters        []BackfillFilter
	BatchSize      int // 10000 when 0
}

const jobColumns = `id, pipeline_id, table_name, kind, destination_ids, filters, batch_size, status, rows_copied,
	rows_total, last_key, error, lease_owner, lease_until, attempts, created_at, started_at, finished_at, updated_at`

func scanJob(row pgx.Row) (BackfillJob, error) {
	var j BackfillJob
	var status string
	var filters []byte
	var lastKey []byte
	if err := row.Scan(&j.ID, &j.PipelineID, &j.Table, &j.Kind, &j.DestinationIDs, &filters, &j.BatchSize, &status,
		&j.RowsCopied, &j.RowsTotal, &lastKey, &j.Error, &j.LeaseOwner, &j.LeaseUntil, &j.Attempts, &j.CreatedAt,
		&j.StartedAt, &j.FinishedAt, &j.UpdatedAt); err != nil {
		return BackfillJob{}, err
	}
	j.Status = JobStatus(status)
	if len(filters) > 0 {
		if err := json.Unmarshal(filters, &j.Filters); err != nil {
			return BackfillJob{}, fmt.Errorf("decode filters of backfill job %d: %w", j.ID, err)
		}
	}
	if len(lastKey) > 0 {
		j.LastKey = json.RawMessage(lastKey)
	}
	if j.DestinationIDs == nil {
		j.DestinationIDs = []int64{}
	}
	return j, nil
}

// CreateBackfillJob records a PENDING job.
func (s *Store) CreateBackfillJob(ctx context.Context, in BackfillInput) (BackfillJob, error) {
	j, err := createJob(ctx, s.pool, in)
	if err != nil {
		return BackfillJob{}, fmt.Errorf("create backfill job of pipeline %d table %s: %w", in.PipelineID, in.Table, err)
	}
	return j, nil
}

// rowQuerier is a pool or a transaction.
type rowQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func createJob(ctx context.Context, q rowQuerier, in BackfillInput) (BackfillJob, error) {
	if in.Kind == "" {
		in.Kind = JobKindBackfill
	}
	if in.BatchSize <= 0 {
		in.BatchSize = 10000
	}
	if in.DestinationIDs == nil {
		in.DestinationIDs = []int64{}
	}
	if in.Filters == nil {
		in.Filters = []BackfillFilter{}
	}
	filters, err := json.Marshal(in.Filters)
	if err != nil {
		return BackfillJob{}, fmt.Errorf("encode filters: %w", err)
	}
	j, err := scanJob(q.QueryRow(ctx, `INSERT INTO backfill_jobs (pipeline_id, table_name, kind, destination_ids, filters, batch_size)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING `+jobColumns,
		in.PipelineID, in.Table, in.Kind, in.DestinationIDs, filters, in.BatchSize))
	if pe, ok := pgErr(err); ok && pe.Code == codeForeignKeyViolation {
		return BackfillJob{}, &ReferenceError{Field: "id", Msg: fmt.Sprintf("pipeline %d does not exist", in.PipelineID)}
	}
	return j, err
}

// EnsureSnapshotJobs creates a snapshot job for each of tables that needs
// one and returns the jobs created. With onlyNever, a table needs one when
// it never had a snapshot job (pipeline start, table added); otherwise
// when it has no COMPLETED snapshot and none PENDING or EXECUTING
// (POST /pipelines/{id}/refresh). Nothing is created when the pipeline's
// snapshot setting is off. Concurrent calls for one pipeline are
// serialized by a row lock on the pipeline.
func (s *Store) EnsureSnapshotJobs(ctx context.Context, pipelineID int64, tables []string, onlyNever bool) ([]BackfillJob, error) {
	var out []BackfillJob
	err := s.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		var enabled bool
		err := tx.QueryRow(ctx, `SELECT snapshot FROM pipelines WHERE id = $1 FOR UPDATE`, pipelineID).Scan(&enabled)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if !enabled {
			return nil
		}
		statuses := []string{string(JobPending), string(JobExecuting), string(JobCompleted)}
		if onlyNever {
			statuses = append(statuses, string(JobFailed), string(JobCancelled))
		}
		for _, t := range tables {
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM backfill_jobs WHERE pipeline_id = $1 AND table_name = $2
				AND kind = 'snapshot' AND status = ANY($3))`, pipelineID, t, statuses).Scan(&exists); err != nil {
				return err
			}
			if exists {
				continue
			}
			j, err := createJob(ctx, tx, BackfillInput{PipelineID: pipelineID, Table: t, Kind: JobKindSnapshot})
			if err != nil {
				return err
			}
			out = append(out, j)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("create snapshot jobs of pipeline %d: %w", pipelineID, err)
	}
	return out, nil
}

// SetPipelineSnapshot records whether starting the pipeline (or adding a
// table) snapshots its tables.
func (s *Store) SetPipelineSnapshot(ctx context.Context, pipelineID int64, enabled bool) error {
	tag, err := s.pool.Exec(ctx, `UPDATE pipelines SET snapshot = $2 WHERE id = $1`, pipelineID, enabled)
	if err != nil {
		return fmt.Errorf("set snapshot of pipeline %d: %w", pipelineID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("set snapshot of pipeline %d: %w", pipelineID, ErrNotFound)
	}
	return nil
}

// PipelineSnapshot reports the pipeline's snapshot setting.
func (s *Store) PipelineSnapshot(ctx context.Context, pipelineID int64) (bool, error) {
	var enabled bool
	err := s.pool.QueryRow(ctx, `SELECT snapshot FROM pipelines WHERE id = $1`, pipelineID).Scan(&enabled)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Errorf("pipeline %d: %w", pipelineID, ErrNotFound)
	}
	if err != nil {
		return false, fmt.Errorf("read snapshot of pipeline %d: %w", pipelineID, err)
	}
	return enabled, nil
}

// GetBackfillJob returns one job.
func (s *Store) GetBackfillJob(ctx context.Context, id int64) (BackfillJob, error) {
	j, err := scanJob(s.pool.QueryRow(ctx, `SELECT `+jobColumns+` FROM backfill_jobs WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return BackfillJob{}, fmt.Errorf("backfill job %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return BackfillJob{}, fmt.Errorf("read backfill job %d: %w", id, err)
	}
	return j, nil
}

// ListBackfillJobs returns a page of a pipeline's jobs, newest first, and
// their number.
func (s *Store) ListBackfillJobs(ctx context.Context, pipelineID int64, p Page) ([]BackfillJob, int64, error) {
	p = p.normalized()
	out := []BackfillJob{}
	var total int64
	err := s.inTx(ctx, readTx(), func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM backfill_jobs WHERE pipeline_id = $1`, pipelineID).Scan(&total); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+jobColumns+` FROM backfill_jobs WHERE pipeline_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3`,
			pipelineID, p.Limit, p.Offset)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			j, err := scanJob(rows)
			if err != nil {
				return err
			}
			out = append(out, j)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list backfill jobs of pipeline %d: %w", pipelineID, err)
	}
	return out, total, nil
}

// CancelBackfillJob marks a PENDING or EXECUTING job CANCELLED; the worker
// running it notices at its next checkpoint (its checkpoint matches no
// row) and stops. A finished job is returned unchanged with ok false.
func (s *Store) CancelBackfillJob(ctx context.Context, id int64) (j BackfillJob, ok bool, err error) {
	j, err = scanJob(s.pool.QueryRow(ctx, `UPDATE backfill_jobs SET status = 'CANCELLED', finished_at = now(), updated_at = now(),
		lease_owner = '', lease_until = NULL WHERE id = $1 AND status IN ('PENDING', 'EXECUTING') RETURNING `+jobColumns, id))
	if errors.Is(err, pgx.ErrNoRows) {
		j, err = s.GetBackfillJob(ctx, id)
		return j, false, err
	}
	if err != nil {
		return BackfillJob{}, false, fmt.Errorf("cancel backfill job %d: %w", id, err)
	}
	return j, true, nil
}

// ClaimBackfillJob gives owner the oldest claimable job for lease: a
// PENDING one (past its not_before) or an EXECUTING one whose lease
// expired (its worker died; the job resumes from LastKey). ok is false when
// there is none. SKIP LOCKED lets workers claim concurrently.
func (s *Store) ClaimBackfillJob(ctx context.Context, owner string, lease time.Duration) (j BackfillJob, ok bool, err error) {
	j, err = scanJob(s.pool.QueryRow(ctx, `UPDATE backfill_jobs SET status = 'EXECUTING', lease_owner = $1,
		lease_until = now() + $2 * interval '1 millisecond', attempts = attempts + 1, started_at = COALESCE(started_at, now()),
		updated_at = now()
		WHERE id = (SELECT id FROM backfill_jobs
			WHERE (status = 'PENDING' AND (not_before IS NULL OR not_before <= now()))
			   OR (status = 'EXECUTING' AND lease_until < now())
			ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING `+jobColumns, owner, lease.Milliseconds()))
	if errors.Is(err, pgx.ErrNoRows) {
		return BackfillJob{}, false, nil
	}
	if err != nil {
		return BackfillJob{}, false, fmt.Errorf("claim backfill job: %w", err)
	}
	return j, true, nil
}

// ErrJobLost is returned by CheckpointBackfillJob and FinishBackfillJob
// when the job is no longer EXECUTING under this owner: cancelled, or its
// lease expired and another worker took it.
var ErrJobLost = errors.New("backfill job cancelled or claimed by another worker")

// Checkpoint is the progress a worker records after a batch.
type Checkpoint struct {
	LastKey    json.RawMessage // nil keeps the stored one
	RowsCopied int64
	RowsTotal  *int64 // nil keeps the stored one
}

// CheckpointBackfillJob records progress and renews the lease. Call it
// only after JetStream acknowledged every row up to LastKey: a job resumed
// after a crash starts after LastKey.
func (s *Store) CheckpointBackfillJob(ctx context.Context, id int64, owner string, lease time.Duration, cp Checkpoint) error {
	var lastKey []byte
	if cp.LastKey != nil {
		lastKey = cp.LastKey
	}
	tag, err := s.pool.Exec(ctx, `UPDATE backfill_jobs SET last_key = COALESCE($4::jsonb, last_key), rows_copied = $5,
		rows_total = COALESCE($6, rows_total), lease_until = now() + $3 * interval '1 millisecond', error = '', updated_at = now()
		WHERE id = $1 AND lease_owner = $2 AND status = 'EXECUTING'`, id, owner, lease.Milliseconds(), lastKey, cp.RowsCopied, cp.RowsTotal)
	if err != nil {
		return fmt.Errorf("checkpoint backfill job %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("checkpoint backfill job %d: %w", id, ErrJobLost)
	}
	return nil
}

// FinishBackfillJob marks the job COMPLETED or FAILED (with errText).
func (s *Store) FinishBackfillJob(ctx context.Context, id int64, owner string, status JobStatus, errText string) error {
	if status != JobCompleted && status != JobFailed {
		return fmt.Errorf("finish backfill job %d: status %q is not final", id, status)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE backfill_jobs SET status = $3, error = $4, finished_at = now(), updated_at = now(),
		lease_owner = '', lease_until = NULL WHERE id = $1 AND lease_owner = $2 AND status = 'EXECUTING'`, id, owner, string(status), errText)
	if err != nil {
		return fmt.Errorf("finish backfill job %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("finish backfill job %d: %w", id, ErrJobLost)
	}
	return nil
}

// DeferBackfillJob hands a claimed job back as PENDING until after wait,
// noting why (the source is not ready for it yet).
func (s *Store) DeferBackfillJob(ctx context.Context, id int64, owner string, wait time.Duration, note string) error {
	// A job that has not copied anything yet has not started (its rate
	// would otherwise count the wait).
	_, err := s.pool.Exec(ctx, `UPDATE backfill_jobs SET status = 'PENDING', error = $4, lease_owner = '', lease_until = NULL,
		started_at = CASE WHEN rows_copied = 0 THEN NULL ELSE started_at END,
		not_before = now() + $3 * interval '1 millisecond', updated_at = now()
		WHERE id = $1 AND lease_owner = $2 AND status = 'EXECUTING'`, id, owner, wait.Milliseconds(), note)
	if err != nil {
		return fmt.Errorf("defer backfill job %d: %w", id, err)
	}
	return nil
}

// BusyBackfillTables lists the tables of a source with a backfill job, of
// any of its pipelines, that may still publish a batch: EXECUTING, or
// holding an unexpired lease (a cancelled job's worker may be publishing
// its last batch). A batch carries the snapshot version it was read at,
// which may be older than changes already applied; a job that starts later
// reads at a newer one. Every pipeline of the source counts: a job without
// destination_ids publishes to every consumer of the table.
func (s *Store) BusyBackfillTables(ctx context.Context, sourceID int64) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT j.table_name FROM backfill_jobs j JOIN pipelines p ON p.id = j.pipeline_id
		WHERE p.source_id = $1 AND (j.status = 'EXECUTING' OR j.lease_until > now()) ORDER BY j.table_name`, sourceID)
	if err != nil {
		return nil, fmt.Errorf("busy backfill tables of source %d: %w", sourceID, err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("busy backfill tables of source %d: %w", sourceID, err)
	}
	return tables, nil
}
