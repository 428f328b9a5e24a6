package configstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
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

// DestinationStates returns the reported state of each destination of a
// pipeline, ordered by destination id.
func (s *Store) DestinationStates(ctx context.Context, pipelineID int64) ([]DestinationState, error) {
	rows, err := s.pool.Query(ctx, `SELECT pipeline_id, destination_id, health, last_error, last_applied_at, updated_at
		FROM pipeline_destinations WHERE pipeline_id = $1 ORDER BY destination_id`, pipelineID)
	if err != nil {
		return nil, fmt.Errorf("read destination states of pipeline %d: %w", pipelineID, err)
	}
	defer rows.Close()
	out := []DestinationState{}
	for rows.Next() {
		var st DestinationState
		var health string
		var applied *time.Time
		if err := rows.Scan(&st.PipelineID, &st.DestinationID, &health, &st.LastError, &applied, &st.UpdatedAt); err != nil {
			return nil, fmt.Errorf("read destination states of pipeline %d: %w", pipelineID, err)
		}
		st.Health = Health(health)
		if applied != nil {
			st.LastAppliedAt = *applied
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read destination states of pipeline %d: %w", pipelineID, err)
	}
	return out, nil
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
