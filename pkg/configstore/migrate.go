package configstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"

	"github.com/rosettacdc/rosetta/migrations"
)

// migrationLockKey is the pg_advisory_lock key Migrate holds, so processes
// starting together apply each migration once ("rosetta" in ASCII).
const migrationLockKey int64 = 0x726f7365747461

// Migration is one schema file.
type Migration struct {
	Version  int
	Name     string // file name
	SQL      string
	Checksum string // hex SHA-256 of SQL
}

var migrationName = regexp.MustCompile(`^([0-9]{4})_[a-z0-9_]+\.sql$`)

// LoadMigrations reads NNNN_name.sql files from fsys in version order. It
// refuses other .sql names and duplicate versions.
func LoadMigrations(fsys fs.FS) ([]Migration, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	var out []Migration
	seen := map[int]string{}
	for _, name := range names {
		m := migrationName.FindStringSubmatch(name)
		if m == nil {
			return nil, fmt.Errorf("migration %s: name must be NNNN_lower_case.sql", name)
		}
		v, _ := strconv.Atoi(m[1])
		if v == 0 {
			return nil, fmt.Errorf("migration %s: versions start at 0001", name)
		}
		if prev, ok := seen[v]; ok {
			return nil, fmt.Errorf("migrations %s and %s have the same version %d", prev, name, v)
		}
		seen[v] = name
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", name, err)
		}
		sum := sha256.Sum256(body)
		out = append(out, Migration{Version: v, Name: name, SQL: string(body), Checksum: hex.EncodeToString(sum[:])})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// Migrate applies the embedded migrations that are not applied yet, each in
// its own transaction together with its schema_migrations row, so a
// migration is applied exactly once even when it fails half-way or several
// processes start at the same time (they wait on an advisory lock). It
// refuses a database where an applied migration's file has since changed.
func (s *Store) Migrate(ctx context.Context) error {
	ms, err := LoadMigrations(migrations.FS)
	if err != nil {
		return err
	}
	return s.migrate(ctx, ms)
}

func (s *Store) migrate(ctx context.Context, ms []Migration) (err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate config database: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLockKey); err != nil {
		return fmt.Errorf("migrate config database: take lock: %w", err)
	}
	defer func() {
		if _, uerr := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLockKey); uerr != nil {
			// Closing the session releases the lock; never return a
			// connection holding it to the pool.
			conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		checksum   text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return fmt.Errorf("migrate config database: create schema_migrations: %w", err)
	}
	rows, err := conn.Query(ctx, `SELECT version, name, checksum FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("migrate config database: read schema_migrations: %w", err)
	}
	type applied struct{ name, checksum string }
	done := map[int]applied{}
	for rows.Next() {
		var v int
		var a applied
		if err := rows.Scan(&v, &a.name, &a.checksum); err != nil {
			rows.Close()
			return fmt.Errorf("migrate config database: read schema_migrations: %w", err)
		}
		done[v] = a
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("migrate config database: read schema_migrations: %w", err)
	}
	for _, m := range ms {
		if a, ok := done[m.Version]; ok {
			if a.checksum != m.Checksum {
				return fmt.Errorf("migrate config database: migration %s was applied as %s with different content; never edit an applied migration, add a new one", m.Name, a.name)
			}
			continue
		}
		tx, err := conn.Begin(ctx)
		if err != nil {
			return fmt.Errorf("apply migration %s: %w", m.Name, err)
		}
		// No arguments: the simple protocol runs every statement of the file.
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // the error above is the one to report
			return fmt.Errorf("apply migration %s: %w", m.Name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)`,
			m.Version, m.Name, m.Checksum); err != nil {
			tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // the error above is the one to report
			return fmt.Errorf("record migration %s: %w", m.Name, err)
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("commit migration %s: %w", m.Name, err)
		}
	}
	return nil
}
