package walmonitor

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Sample is one WAL check of a source: a row of wal_metrics.
type Sample struct {
	SourceID      int64     `json:"source_id"`
	At            time.Time `json:"at"`
	WALLSN        *string   `json:"wal_lsn"`
	RetainedBytes *int64    `json:"retained_bytes"`
	WALStatus     *string   `json:"wal_status"`
	// SafeWALSize is nil when the source keeps WAL for slots without limit
	// (max_slot_wal_keep_size = -1).
	SafeWALSize *int64 `json:"safe_wal_size"`
	// Error says why the check failed; empty when it succeeded.
	Error string `json:"error,omitempty"`
}

// Store keeps samples in the config database's wal_metrics table
// (migrations/0004_wal_metrics.sql). It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
}

// OpenStore connects to the config database at dsn with a small pool of
// its own. The table must exist (configstore.Store.Migrate creates it).
func OpenStore(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("open wal metrics store: %w", err)
	}
	cfg.MaxConns = 4
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "rosetta-wal-monitor"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open wal metrics store: %w", err)
	}
	return &Store{pool: pool}, nil
}

// Close closes the pool.
func (s *Store) Close() { s.pool.Close() }

// Record inserts one sample. A sample of a source deleted meanwhile is
// dropped (the foreign key refuses it), not an error.
func (s *Store) Record(ctx context.Context, x Sample) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO wal_metrics (source_id, at, wal_lsn, retained_bytes, wal_status, safe_wal_size, error)
		SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM sources WHERE id = $1)`,
		x.SourceID, x.At, x.WALLSN, x.RetainedBytes, x.WALStatus, x.SafeWALSize, x.Error)
	if err != nil {
		return fmt.Errorf("record wal sample of source %d: %w", x.SourceID, err)
	}
	return nil
}

// DeleteBefore removes samples taken before t and returns how many.
func (s *Store) DeleteBefore(ctx context.Context, t time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM wal_metrics WHERE at < $1`, t)
	if err != nil {
		return 0, fmt.Errorf("delete wal samples before %s: %w", t.Format(time.RFC3339), err)
	}
	return tag.RowsAffected(), nil
}

// Query selects samples.
type Query struct {
	SourceID int64     // 0: every source
	From, To time.Time // zero: unbounded; From inclusive, To exclusive
	Limit    int       // 0: 1000
}

// List returns the samples matching q, oldest first.
func (s *Store) List(ctx context.Context, q Query) ([]Sample, error) {
	if q.Limit <= 0 {
		q.Limit = 1000
	}
	var from, to *time.Time
	if !q.From.IsZero() {
		from = &q.From
	}
	if !q.To.IsZero() {
		to = &q.To
	}
	rows, err := s.pool.Query(ctx, `
		SELECT source_id, at, wal_lsn, retained_bytes, wal_status, safe_wal_size, error
		FROM wal_metrics
		WHERE ($1 = 0 OR source_id = $1)
		  AND ($2::timestamptz IS NULL OR at >= $2)
		  AND ($3::timestamptz IS NULL OR at < $3)
		ORDER BY at, id
		LIMIT $4`, q.SourceID, from, to, q.Limit)
	if err != nil {
		return nil, fmt.Errorf("list wal samples: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Sample, error) {
		var x Sample
		err := r.Scan(&x.SourceID, &x.At, &x.WALLSN, &x.RetainedBytes, &x.WALStatus, &x.SafeWALSize, &x.Error)
		x.At = x.At.UTC()
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("list wal samples: %w", err)
	}
	return out, nil
}
