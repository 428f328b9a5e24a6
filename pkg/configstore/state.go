package configstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rosettacdc/rosetta/contracts"
)

// SetSourceState records the capture's report on a source (upsert). A
// report for a deleted source returns ErrNotFound; capture may ignore it.
func (s *Store) SetSourceState(ctx context.Context, st SourceState) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO source_state (source_id, state, last_error, confirmed_lsn, updated_at)
		VALUES ($1, $2, $3, $4, COALESCE($5, now()))
		ON CONFLICT (source_id) DO UPDATE SET state = EXCLUDED.state, last_error = EXCLUDED.last_error,
			confirmed_lsn = EXCLUDED.confirmed_lsn, updated_at = EXCLUDED.updated_at`,
		st.SourceID, st.State, st.LastError, st.ConfirmedLSN, nullTime(st.UpdatedAt))
	if pe, ok := pgErr(err); ok && pe.Code == codeForeignKeyViolation {
		return fmt.Errorf("set state of source %d: %w", st.SourceID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("set state of source %d: %w", st.SourceID, err)
	}
	return nil
}

// SourceStateOf returns the last state capture reported for a source, or
// ErrNotFound when it has reported none.
func (s *Store) SourceStateOf(ctx context.Context, sourceID int64) (SourceState, error) {
	st := SourceState{SourceID: sourceID}
	err := s.pool.QueryRow(ctx, `SELECT state, last_error, confirmed_lsn, updated_at FROM source_state WHERE source_id = $1`, sourceID).
		Scan(&st.State, &st.LastError, &st.ConfirmedLSN, &st.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return SourceState{}, fmt.Errorf("state of source %d: %w", sourceID, ErrNotFound)
	}
	if err != nil {
		return SourceState{}, fmt.Errorf("read state of source %d: %w", sourceID, err)
	}
	return st, nil
}

// SetDestinationState records the sink's report on one destination of a
// pipeline. The state row of every (pipeline, destination) pair exists from
// the moment the destination is added to the pipeline (health UNKNOWN), so
// this overwrites it; a report for a pair no longer in the pipeline returns
// ErrNotFound and changes nothing, so a late report never adds a destination
// back. LastAppliedAt zero keeps the stored time (a report of an error
// does not erase when data was last applied).
func (s *Store) SetDestinationState(ctx context.Context, st DestinationState) error {
	tag, err := s.pool.Exec(ctx, `UPDATE pipeline_destinations SET health = $3, last_error = $4,
			last_applied_at = COALESCE($5, last_applied_at), updated_at = COALESCE($6, now())
		WHERE pipeline_id = $1 AND destination_id = $2`,
		st.PipelineID, st.DestinationID, string(st.Health), st.LastError, nullTime(st.LastAppliedAt), nullTime(st.UpdatedAt))
	if err != nil {
		return fmt.Errorf("set state of pipeline %d destination %d: %w", st.PipelineID, st.DestinationID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("set state of pipeline %d destination %d: not in the pipeline: %w", st.PipelineID, st.DestinationID, ErrNotFound)
	}
	return nil
}

// destinationStateColumns are read by scanDestinationState.
const destinationStateColumns = `pipeline_id, destination_id, health, last_error, last_applied_at, updated_at,
	COALESCE(applied_commit_lsn::text, ''), applied_commit_time, throughput, progress_at`

func scanDestinationState(row pgx.Row) (DestinationState, error) {
	var st DestinationState
	var health string
	var applied, commitTime, progressAt *time.Time
	p := &st.Progress
	if err := row.Scan(&st.PipelineID, &st.DestinationID, &health, &st.LastError, &applied, &st.UpdatedAt,
		&p.AppliedCommitLSN, &commitTime, &p.Throughput, &progressAt); err != nil {
		return st, err
	}
	st.Health = Health(health)
	if applied != nil {
		st.LastAppliedAt = *applied
	}
	p.PipelineID, p.DestinationID = st.PipelineID, st.DestinationID
	if commitTime != nil {
		p.AppliedCommitTime = *commitTime
	}
	if progressAt != nil {
		p.At = *progressAt
	}
	return st, nil
}

// DestinationStates returns the reported state of each destination of a
// pipeline, ordered by destination id.
func (s *Store) DestinationStates(ctx context.Context, pipelineID int64) ([]DestinationState, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+destinationStateColumns+`
		FROM pipeline_destinations WHERE pipeline_id = $1 ORDER BY destination_id`, pipelineID)
	if err != nil {
		return nil, fmt.Errorf("read destination states of pipeline %d: %w", pipelineID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (DestinationState, error) { return scanDestinationState(r) })
	if err != nil {
		return nil, fmt.Errorf("read destination states of pipeline %d: %w", pipelineID, err)
	}
	return out, nil
}

// ListDestinationStates returns one page of the states of every pipeline
// destination, ordered by pipeline id then destination id, and how many
// there are in all.
func (s *Store) ListDestinationStates(ctx context.Context, p Page) ([]DestinationState, int64, error) {
	p = p.normalized()
	var total int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM pipeline_destinations`).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count pipeline destinations: %w", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+destinationStateColumns+`
		FROM pipeline_destinations ORDER BY pipeline_id, destination_id LIMIT $1 OFFSET $2`, p.Limit, p.Offset)
	if err != nil {
		return nil, 0, fmt.Errorf("list destination states: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (DestinationState, error) { return scanDestinationState(r) })
	if err != nil {
		return nil, 0, fmt.Errorf("list destination states: %w", err)
	}
	return out, total, nil
}

// SetDestinationProgress records a sink's progress report for one pipeline
// destination. The applied commit LSN only moves forward: a report of an
// older one (a redelivered batch after a sink restart, a dead-letter
// replay) keeps the stored LSN and commit time and only updates the
// throughput. An empty AppliedCommitLSN keeps both. A report for a pair no
// longer in the pipeline returns ErrNotFound.
func (s *Store) SetDestinationProgress(ctx context.Context, p DestinationProgress) error {
	if p.AppliedCommitLSN != "" {
		if _, err := contracts.ParseLSN(p.AppliedCommitLSN); err != nil {
			return fmt.Errorf("set progress of pipeline %d destination %d: %w", p.PipelineID, p.DestinationID, err)
		}
	}
	tag, err := s.pool.Exec(ctx, `UPDATE pipeline_destinations SET
			applied_commit_time = CASE
				WHEN applied_commit_lsn IS NULL OR NULLIF($3, '')::pg_lsn > applied_commit_lsn THEN COALESCE($4, applied_commit_time)
				ELSE applied_commit_time END,
			applied_commit_lsn = GREATEST(applied_commit_lsn, NULLIF($3, '')::pg_lsn),
			throughput = $5, progress_at = COALESCE($6, now())
		WHERE pipeline_id = $1 AND destination_id = $2`,
		p.PipelineID, p.DestinationID, p.AppliedCommitLSN, nullTime(p.AppliedCommitTime), p.Throughput, nullTime(p.At))
	if err != nil {
		return fmt.Errorf("set progress of pipeline %d destination %d: %w", p.PipelineID, p.DestinationID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("set progress of pipeline %d destination %d: not in the pipeline: %w", p.PipelineID, p.DestinationID, ErrNotFound)
	}
	return nil
}

// LagSources returns, for each of sourceIDs that exists, the newest known
// WAL position of the source: the position capture last confirmed
// (source_state) or the WAL position of the last successful WAL check
// (wal_metrics), whichever is newer. Sources with neither are absent.
func (s *Store) LagSources(ctx context.Context, sourceIDs []int64) (map[int64]LagSource, error) {
	rows, err := s.pool.Query(ctx, `SELECT s.id, COALESCE(ss.confirmed_lsn, ''), ss.updated_at, COALESCE(w.wal_lsn, ''), w.at
		FROM sources s
		LEFT JOIN source_state ss ON ss.source_id = s.id
		LEFT JOIN LATERAL (SELECT wal_lsn, at FROM wal_metrics
			WHERE source_id = s.id AND error = '' AND wal_lsn IS NOT NULL ORDER BY at DESC LIMIT 1) w ON true
		WHERE s.id = ANY($1)`, sourceIDs)
	if err != nil {
		return nil, fmt.Errorf("read source positions: %w", err)
	}
	defer rows.Close()
	out := map[int64]LagSource{}
	for rows.Next() {
		var id int64
		var confirmed, wal string
		var confirmedAt, walAt *time.Time
		if err := rows.Scan(&id, &confirmed, &confirmedAt, &wal, &walAt); err != nil {
			return nil, fmt.Errorf("read source positions: %w", err)
		}
		ls := LagSource{SourceID: id}
		if lsn, err := contracts.ParseLSN(confirmed); err == nil && confirmed != "" && confirmedAt != nil {
			ls.LSN, ls.From, ls.At = lsn, "confirmed", *confirmedAt
		}
		if lsn, err := contracts.ParseLSN(wal); err == nil && wal != "" && walAt != nil && lsn > ls.LSN {
			ls.LSN, ls.From, ls.At = lsn, "wal_check", *walAt
		}
		if ls.LSN != 0 {
			out[id] = ls
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read source positions: %w", err)
	}
	return out, nil
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
