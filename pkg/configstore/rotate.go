package configstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// sealedColumn is one column of the config DB that holds sealed values, and
// the binding each row's value was sealed for.
type sealedColumn struct {
	table, column string
	binding       func(id int64) string
}

// sealedColumns lists every column RotateSecrets re-seals. A new column
// holding a sealed value must be added here, or a rotation leaves it under
// the previous key (and it stops opening once that key is dropped).
var sealedColumns = []sealedColumn{
	{"sources", "password_enc", sourcePasswordBinding},
	{"sources", "sslkey_enc", sourceKeyBinding},
	{"destinations", "secrets", destinationSecretsBinding},
}

// RotateProgress reports one column's rotation: rows seen, re-sealed, and
// already under the current key.
type RotateProgress struct {
	Table, Column           string
	Seen, Resealed, Skipped int
}

// RotateSecrets re-seals every stored secret that is not yet a current-key,
// current-format value: opened under the current or a previous key, sealed
// again under the current one for the same row. Each row is its own
// compare-and-set update (it changes only if the stored value is still the
// one read), so the rotation can run beside the services, be interrupted
// and be run again: a second run skips what the first finished. report, if
// set, is called after each column.
func (s *Store) RotateSecrets(ctx context.Context, report func(RotateProgress)) ([]RotateProgress, error) {
	var out []RotateProgress
	for _, c := range sealedColumns {
		p, err := s.rotateColumn(ctx, c)
		if err != nil {
			return out, err
		}
		out = append(out, p)
		if report != nil {
			report(p)
		}
	}
	return out, nil
}

func (s *Store) rotateColumn(ctx context.Context, c sealedColumn) (RotateProgress, error) {
	p := RotateProgress{Table: c.table, Column: c.column}
	// Identifiers come from sealedColumns, never from input.
	rows, err := s.pool.Query(ctx, fmt.Sprintf(`SELECT id, %s FROM %s WHERE %s IS NOT NULL ORDER BY id`, c.column, c.table, c.column))
	if err != nil {
		return p, fmt.Errorf("rotate %s.%s: read: %w", c.table, c.column, err)
	}
	type sealedRow struct {
		id  int64
		enc []byte
	}
	var todo []sealedRow
	for rows.Next() {
		var r sealedRow
		if err := rows.Scan(&r.id, &r.enc); err != nil {
			rows.Close()
			return p, fmt.Errorf("rotate %s.%s: read: %w", c.table, c.column, err)
		}
		p.Seen++
		if s.box.Current(r.enc) {
			p.Skipped++
			continue
		}
		todo = append(todo, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return p, fmt.Errorf("rotate %s.%s: read: %w", c.table, c.column, err)
	}
	for _, r := range todo {
		b := c.binding(r.id)
		pt, err := s.box.Open(r.enc, b)
		if err != nil {
			return p, fmt.Errorf("rotate %s %d: %w", c.table, r.id, err)
		}
		enc, err := s.box.Seal(pt, b)
		if err != nil {
			return p, fmt.Errorf("rotate %s %d: %w", c.table, r.id, err)
		}
		var id int64
		err = s.pool.QueryRow(ctx, fmt.Sprintf(`UPDATE %s SET %s = $3 WHERE id = $1 AND %s = $2 RETURNING id`, c.table, c.column, c.column),
			r.id, r.enc, enc).Scan(&id)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			// Changed or deleted since read: an update sealed it under
			// the current key already, or it is gone.
			p.Skipped++
		case err != nil:
			return p, fmt.Errorf("rotate %s %d: write: %w", c.table, r.id, err)
		default:
			p.Resealed++
		}
	}
	return p, nil
}
