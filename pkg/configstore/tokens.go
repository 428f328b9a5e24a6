package configstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rosettacdc/rosetta/pkg/apitoken"
)

// BootstrapTokenName names the token taken from ROSETTA_API_TOKEN (or made
// by `rosetta dev`); EnsureBootstrapToken keeps its hash current.
const BootstrapTokenName = "bootstrap"

// ErrUnauthenticated is returned by Authenticate for a token that is
// unknown, revoked or expired; which of these is not said (to the client).
var ErrUnauthenticated = errors.New("invalid, revoked or expired API token")

// Token is a stored API token: never its value, which exists only in the
// answer that created it.
type Token struct {
	ID         int64
	Name       string
	Role       apitoken.Role
	CreatedAt  time.Time
	LastUsedAt *time.Time
	ExpiresAt  *time.Time
	RevokedAt  *time.Time
}

// TokenInput creates a token. ExpiresAt nil means it never expires.
type TokenInput struct {
	Name      string
	Role      apitoken.Role
	ExpiresAt *time.Time
}

// lastUsedGranularity bounds how often a token's last_used_at is written:
// at most once a minute per token, not once per request.
const lastUsedGranularity = time.Minute

const tokenColumns = `id, name, role, created_at, last_used_at, expires_at, revoked_at`

func scanToken(row pgx.Row) (Token, error) {
	var t Token
	var role string
	if err := row.Scan(&t.ID, &t.Name, &role, &t.CreatedAt, &t.LastUsedAt, &t.ExpiresAt, &t.RevokedAt); err != nil {
		return Token{}, err
	}
	r, err := apitoken.ParseRole(role)
	if err != nil {
		return Token{}, fmt.Errorf("token %d: %w", t.ID, err)
	}
	t.Role = r
	return t, nil
}

// CreateToken generates a token, stores its hash and returns the token's
// value (shown to the user once) with its record. A live token with the
// same name is a ConflictError on "name".
func (s *Store) CreateToken(ctx context.Context, in TokenInput) (string, Token, error) {
	value, err := apitoken.Generate()
	if err != nil {
		return "", Token{}, err
	}
	t, err := s.insertToken(ctx, in, value)
	return value, t, err
}

func (s *Store) insertToken(ctx context.Context, in TokenInput, value string) (Token, error) {
	if in.Role < apitoken.Viewer || in.Role > apitoken.Admin {
		return Token{}, fmt.Errorf("create token %q: invalid role %v", in.Name, in.Role)
	}
	row := s.pool.QueryRow(ctx, `INSERT INTO api_tokens (name, role, token_hash, expires_at) VALUES ($1, $2, $3, $4)
		RETURNING `+tokenColumns, in.Name, in.Role.String(), apitoken.Hash(value), in.ExpiresAt)
	t, err := scanToken(row)
	if pe, ok := pgErr(err); ok && pe.Code == codeUniqueViolation {
		if pe.ConstraintName == "api_tokens_hash_key" {
			return Token{}, &ConflictError{Field: "token", Msg: "this token value is already stored under another name"}
		}
		return Token{}, &ConflictError{Field: "name", Msg: fmt.Sprintf("a token named %q exists: revoke it or choose another name", in.Name)}
	}
	if err != nil {
		return Token{}, fmt.Errorf("create token %q: %w", in.Name, err)
	}
	return t, nil
}

// EnsureBootstrapToken makes value the admin token named
// BootstrapTokenName: it inserts it, or replaces the hash of the live one
// when the operator changed ROSETTA_API_TOKEN. Several API processes with
// the same value may call it concurrently.
func (s *Store) EnsureBootstrapToken(ctx context.Context, value string) error {
	if err := apitoken.CheckBootstrap(value); err != nil {
		return err
	}
	hash := apitoken.Hash(value)
	return s.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		// Serialises concurrent starts (the name's unique index would make
		// the loser fail instead).
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('rosetta.bootstrap_token'))`); err != nil {
			return fmt.Errorf("lock bootstrap token: %w", err)
		}
		var id int64
		var stored string
		err := tx.QueryRow(ctx, `SELECT id, token_hash FROM api_tokens WHERE name = $1 AND revoked_at IS NULL`,
			BootstrapTokenName).Scan(&id, &stored)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			_, err = tx.Exec(ctx, `INSERT INTO api_tokens (name, role, token_hash) VALUES ($1, 'admin', $2)`, BootstrapTokenName, hash)
		case err != nil:
		case stored != hash:
			// The old value stops working; the row keeps its history.
			_, err = tx.Exec(ctx, `UPDATE api_tokens SET revoked_at = now() WHERE id = $1`, id)
			if err == nil {
				_, err = tx.Exec(ctx, `INSERT INTO api_tokens (name, role, token_hash) VALUES ($1, 'admin', $2)`, BootstrapTokenName, hash)
			}
		}
		if pe, ok := pgErr(err); ok && pe.Code == codeUniqueViolation {
			return errors.New("store bootstrap token: this value is already the value of another token; choose another ROSETTA_API_TOKEN")
		}
		if err != nil {
			return fmt.Errorf("store bootstrap token: %w", err)
		}
		return nil
	})
}

// Authenticate returns the live token whose value is value, and records
// its use. ErrUnauthenticated when there is none (unknown, revoked or
// expired).
func (s *Store) Authenticate(ctx context.Context, value string) (Token, error) {
	row := s.pool.QueryRow(ctx, `SELECT `+tokenColumns+` FROM api_tokens
		WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())`, apitoken.Hash(value))
	t, err := scanToken(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return Token{}, ErrUnauthenticated
	}
	if err != nil {
		return Token{}, fmt.Errorf("authenticate token: %w", err)
	}
	if t.LastUsedAt == nil || time.Since(*t.LastUsedAt) > lastUsedGranularity {
		if _, err := s.pool.Exec(ctx, `UPDATE api_tokens SET last_used_at = now() WHERE id = $1`, t.ID); err != nil {
			return Token{}, fmt.Errorf("record use of token %q: %w", t.Name, err)
		}
	}
	return t, nil
}

// ListTokens returns tokens by id, revoked ones too when withRevoked.
func (s *Store) ListTokens(ctx context.Context, withRevoked bool, p Page) ([]Token, int64, error) {
	p = p.normalized()
	var out []Token
	var total int64
	err := s.inTx(ctx, readTx(), func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM api_tokens WHERE $1 OR revoked_at IS NULL`, withRevoked).Scan(&total); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+tokenColumns+` FROM api_tokens WHERE $1 OR revoked_at IS NULL
			ORDER BY id LIMIT $2 OFFSET $3`, withRevoked, p.Limit, p.Offset)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			t, err := scanToken(rows)
			if err != nil {
				return err
			}
			out = append(out, t)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list tokens: %w", err)
	}
	return out, total, nil
}

// GetToken returns one token, revoked or not.
func (s *Store) GetToken(ctx context.Context, id int64) (Token, error) {
	t, err := scanToken(s.pool.QueryRow(ctx, `SELECT `+tokenColumns+` FROM api_tokens WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Token{}, fmt.Errorf("token %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Token{}, fmt.Errorf("get token %d: %w", id, err)
	}
	return t, nil
}

// RevokeToken makes a token stop authenticating at once. Revoking a
// revoked token is not an error; an unknown id is ErrNotFound.
func (s *Store) RevokeToken(ctx context.Context, id int64) (Token, error) {
	t, err := scanToken(s.pool.QueryRow(ctx, `UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now())
		WHERE id = $1 RETURNING `+tokenColumns, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Token{}, fmt.Errorf("token %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Token{}, fmt.Errorf("revoke token %d: %w", id, err)
	}
	return t, nil
}
