package configstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// AuditEntry is one change recorded in the audit log. Before and After
// are the entity as the API shows it (JSON without secrets); either may be
// nil (nothing before a create, nothing after a delete).
type AuditEntry struct {
	ID        int64
	At        time.Time
	TokenID   *int64
	TokenName string
	Action    string
	Entity    string
	EntityID  string
	Before    json.RawMessage
	After     json.RawMessage
}

// AppendAudit records a change. The caller removes secrets from Before
// and After first.
func (s *Store) AppendAudit(ctx context.Context, e AuditEntry) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO audit_log (token_id, token_name, action, entity, entity_id, before, after)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, e.TokenID, e.TokenName, e.Action, e.Entity, e.EntityID, nullJSON(e.Before), nullJSON(e.After))
	if err != nil {
		return fmt.Errorf("append audit entry %s %s: %w", e.Action, e.EntityID, err)
	}
	return nil
}

func nullJSON(b json.RawMessage) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

// ListAudit returns the audit log, newest first, and its total size.
func (s *Store) ListAudit(ctx context.Context, p Page) ([]AuditEntry, int64, error) {
	p = p.normalized()
	var out []AuditEntry
	var total int64
	err := s.inTx(ctx, readTx(), func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM audit_log`).Scan(&total); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT id, at, token_id, token_name, action, entity, entity_id, before::text, after::text
			FROM audit_log ORDER BY id DESC LIMIT $1 OFFSET $2`, p.Limit, p.Offset)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var e AuditEntry
			var before, after *string
			if err := rows.Scan(&e.ID, &e.At, &e.TokenID, &e.TokenName, &e.Action, &e.Entity, &e.EntityID, &before, &after); err != nil {
				return err
			}
			if before != nil {
				e.Before = json.RawMessage(*before)
			}
			if after != nil {
				e.After = json.RawMessage(*after)
			}
			out = append(out, e)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list audit log: %w", err)
	}
	return out, total, nil
}
