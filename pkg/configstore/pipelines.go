package configstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// PipelineInput is what an admin sets on a pipeline. The store does not
// validate table names or check the source's catalog; the API does.
type PipelineInput struct {
	Name           string
	SourceID       int64
	DestinationIDs []int64
	Tables         []string // "schema.table"
}

// pipelineSelect reads pipelines with their destination ids (ascending).
const pipelineSelect = `SELECT p.id, p.name, p.source_id, p.tables, p.status, p.created_at, p.updated_at,
	COALESCE((SELECT array_agg(pd.destination_id ORDER BY pd.destination_id) FROM pipeline_destinations pd WHERE pd.pipeline_id = p.id), '{}'),
	COALESCE((SELECT s.partitions FROM sources s WHERE s.id = p.source_id), 1)
	FROM pipelines p`

func scanPipeline(row pgx.Row) (Pipeline, error) {
	var p Pipeline
	var status string
	if err := row.Scan(&p.ID, &p.Name, &p.SourceID, &p.Tables, &status, &p.CreatedAt, &p.UpdatedAt, &p.DestinationIDs, &p.SourcePartitions); err != nil {
		return Pipeline{}, err
	}
	p.Status = PipelineStatus(status)
	return p, nil
}

// CreatePipeline stores a new pipeline in status PAUSE: nothing is
// replicated until it is started.
func (s *Store) CreatePipeline(ctx context.Context, in PipelineInput) (Pipeline, error) {
	var out Pipeline
	err := s.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		var id int64
		if err := tx.QueryRow(ctx, `INSERT INTO pipelines (name, source_id, tables, status) VALUES ($1, $2, $3, $4) RETURNING id`,
			in.Name, in.SourceID, in.Tables, string(StatusPause)).Scan(&id); err != nil {
			return err
		}
		if err := setPipelineDestinations(ctx, tx, id, in.DestinationIDs); err != nil {
			return err
		}
		var err error
		out, err = scanPipeline(tx.QueryRow(ctx, pipelineSelect+` WHERE p.id = $1`, id))
		return err
	})
	if err != nil {
		return Pipeline{}, fmt.Errorf("create pipeline %s: %w", in.Name, pipelineWriteError(in, err))
	}
	return out, nil
}

// UpdatePipeline replaces a pipeline's name, source, destinations and
// tables; its status is kept. Destinations that stay keep their reported
// state; removed ones lose it.
func (s *Store) UpdatePipeline(ctx context.Context, id int64, in PipelineInput) (Pipeline, error) {
	var out Pipeline
	err := s.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE pipelines SET name = $2, source_id = $3, tables = $4, updated_at = now() WHERE id = $1`,
			id, in.Name, in.SourceID, in.Tables)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		if err := setPipelineDestinations(ctx, tx, id, in.DestinationIDs); err != nil {
			return err
		}
		out, err = scanPipeline(tx.QueryRow(ctx, pipelineSelect+` WHERE p.id = $1`, id))
		return err
	})
	if err != nil {
		return Pipeline{}, fmt.Errorf("update pipeline %d: %w", id, pipelineWriteError(in, err))
	}
	return out, nil
}

func setPipelineDestinations(ctx context.Context, tx pgx.Tx, pipelineID int64, destIDs []int64) error {
	if _, err := tx.Exec(ctx, `DELETE FROM pipeline_destinations WHERE pipeline_id = $1 AND destination_id <> ALL($2)`, pipelineID, destIDs); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO pipeline_destinations (pipeline_id, destination_id)
		SELECT $1, d FROM unnest($2::bigint[]) AS d ON CONFLICT DO NOTHING`, pipelineID, destIDs)
	return err
}

func pipelineWriteError(in PipelineInput, err error) error {
	pe, ok := pgErr(err)
	if !ok {
		return err
	}
	switch {
	case pe.Code == codeUniqueViolation && pe.ConstraintName == "pipelines_name_key":
		return &ConflictError{Field: "name", Msg: fmt.Sprintf("a pipeline named %q already exists", in.Name)}
	case pe.Code == codeForeignKeyViolation && pe.ConstraintName == "pipelines_source_id_fkey":
		return &ReferenceError{Field: "source_id", Msg: fmt.Sprintf("source %d does not exist", in.SourceID)}
	case pe.Code == codeForeignKeyViolation && pe.ConstraintName == "pipeline_destinations_destination_id_fkey":
		return &ReferenceError{Field: "destination_ids", Msg: "a destination in destination_ids does not exist"}
	}
	return err
}

// SetPipelineStatus records what an admin asked the pipeline to do.
func (s *Store) SetPipelineStatus(ctx context.Context, id int64, status PipelineStatus) (Pipeline, error) {
	if status != StatusStart && status != StatusPause {
		return Pipeline{}, fmt.Errorf("set status of pipeline %d: unknown status %q", id, status)
	}
	var out Pipeline
	err := s.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE pipelines SET status = $2, updated_at = now() WHERE id = $1`, id, string(status))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		out, err = scanPipeline(tx.QueryRow(ctx, pipelineSelect+` WHERE p.id = $1`, id))
		return err
	})
	if err != nil {
		return Pipeline{}, fmt.Errorf("set status of pipeline %d: %w", id, err)
	}
	return out, nil
}

// GetPipeline returns one pipeline.
func (s *Store) GetPipeline(ctx context.Context, id int64) (Pipeline, error) {
	p, err := scanPipeline(s.pool.QueryRow(ctx, pipelineSelect+` WHERE p.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Pipeline{}, fmt.Errorf("pipeline %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Pipeline{}, fmt.Errorf("read pipeline %d: %w", id, err)
	}
	return p, nil
}

// ListPipelines returns a page of pipelines ordered by id and the number of
// pipelines.
func (s *Store) ListPipelines(ctx context.Context, p Page) ([]Pipeline, int64, error) {
	p = p.normalized()
	var out []Pipeline
	var total int64
	err := s.inTx(ctx, readTx(), func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM pipelines`).Scan(&total); err != nil {
			return err
		}
		var err error
		out, err = queryPipelines(ctx, tx, pipelineSelect+` ORDER BY p.id LIMIT $1 OFFSET $2`, p.Limit, p.Offset)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list pipelines: %w", err)
	}
	return out, total, nil
}

// ListAllPipelines returns every pipeline with its destination ids and
// tables, for services.
func (s *Store) ListAllPipelines(ctx context.Context) ([]Pipeline, error) {
	out, err := queryPipelines(ctx, s.pool, pipelineSelect+` ORDER BY p.id`)
	if err != nil {
		return nil, fmt.Errorf("list pipelines: %w", err)
	}
	return out, nil
}

func queryPipelines(ctx context.Context, q querier, sql string, args ...any) ([]Pipeline, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Pipeline{}
	for rows.Next() {
		p, err := scanPipeline(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// DeletePipeline removes a pipeline and its destinations' reported state.
func (s *Store) DeletePipeline(ctx context.Context, id int64) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM pipelines WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("delete pipeline %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete pipeline %d: %w", id, ErrNotFound)
	}
	return nil
}
