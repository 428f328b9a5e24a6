package configstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rosettacdc/rosetta/pkg/secrets"
)

// Store reads and writes the config database. It is safe for concurrent
// use. Methods named ...WithSecrets and ListAll... return decrypted secrets
// and are meant for services; every other read leaves secrets out and says
// which are set (Source.PasswordSet, Destination.SecretKeys).
type Store struct {
	pool *pgxpool.Pool
	box  *secrets.Box
}

// Open connects to the config database at dsn and checks that it answers.
// It does not migrate: call Migrate. box encrypts and decrypts stored
// secrets.
func Open(ctx context.Context, dsn string, box *secrets.Box) (*Store, error) {
	if box == nil {
		return nil, errors.New("open config store: no secrets box")
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgconn redacts the password from parse errors.
		return nil, fmt.Errorf("open config store: %w", err)
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "rosetta"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open config store: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open config store %s:%d/%s: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, err)
	}
	return &Store{pool: pool, box: box}, nil
}

// Close closes every connection; the Store is unusable afterwards.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that the config database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping config database: %w", err)
	}
	return nil
}

// InstallationID is the random id created once per config database; it
// goes into derived names (see DerivedName).
func (s *Store) InstallationID(ctx context.Context) (string, error) {
	var id string
	if err := s.pool.QueryRow(ctx, `SELECT id FROM installation`).Scan(&id); err != nil {
		return "", fmt.Errorf("read installation id: %w", err)
	}
	return id, nil
}

// Page selects a slice of a list ordered by id.
type Page struct {
	Limit  int
	Offset int
}

func (p Page) normalized() Page {
	if p.Limit <= 0 {
		p.Limit = 50
	}
	if p.Offset < 0 {
		p.Offset = 0
	}
	return p
}

// inTx runs fn in a transaction, committing when fn returns nil.
func (s *Store) inTx(ctx context.Context, opts pgx.TxOptions, fn func(pgx.Tx) error) error {
	tx, err := s.pool.BeginTx(ctx, opts)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// readTx gives a list and its count one snapshot.
func readTx() pgx.TxOptions {
	return pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
}

// pgErr returns the PostgreSQL error inside err, if any.
func pgErr(err error) (*pgconn.PgError, bool) {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe, true
	}
	return nil, false
}

const (
	codeUniqueViolation     = "23505"
	codeForeignKeyViolation = "23503"
)
