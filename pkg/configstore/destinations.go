package configstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5"

	"github.com/rosettacdc/rosetta/pkg/secrets"
)

// DestinationInput is what an admin sets on a destination.
type DestinationInput struct {
	Name string
	Type string
	// Config is the whole type-specific config including secret fields
	// (IsSecretField), which must be strings. They are split off and stored
	// encrypted. On update a secret field absent from Config keeps the
	// stored value, and one set to "" removes it.
	Config map[string]any
}

const destinationColumns = `id, name, type, config, secrets, secret_keys, created_at, updated_at`

// splitSecrets separates secret fields from cfg. A "" secret is returned
// in cleared so that an update removes it.
func splitSecrets(cfg map[string]any) (plain map[string]any, secret map[string]string, cleared []string, err error) {
	plain = map[string]any{}
	secret = map[string]string{}
	for k, v := range cfg {
		if !IsSecretField(k) {
			plain[k] = v
			continue
		}
		if v == nil {
			continue
		}
		str, ok := v.(string)
		if !ok {
			return nil, nil, nil, fmt.Errorf("config field %s must be a string", k)
		}
		if str == "" {
			cleared = append(cleared, k)
			continue
		}
		secret[k] = str
	}
	return plain, secret, cleared, nil
}

// destinationSecretsBinding binds a destination's sealed secrets to its row,
// so they open nowhere else.
func destinationSecretsBinding(id int64) string {
	return secrets.Binding("destinations", id, "secrets")
}

func (s *Store) sealSecrets(id int64, m map[string]string) (enc []byte, keys []string, err error) {
	keys = make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(m) == 0 {
		return nil, keys, nil
	}
	body, err := json.Marshal(m)
	if err != nil {
		return nil, nil, fmt.Errorf("encode secrets: %w", err)
	}
	enc, err = s.box.Seal(body, destinationSecretsBinding(id))
	if err != nil {
		return nil, nil, fmt.Errorf("encrypt secrets: %w", err)
	}
	return enc, keys, nil
}

func (s *Store) openSecrets(id int64, enc []byte) (map[string]string, error) {
	m := map[string]string{}
	if enc == nil {
		return m, nil
	}
	body, err := s.box.Open(enc, destinationSecretsBinding(id))
	if err != nil {
		return nil, fmt.Errorf("decrypt secrets of destination %d: %w", id, err)
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("decode secrets of destination %d: %w", id, err)
	}
	return m, nil
}

func (s *Store) scanDestination(row pgx.Row, withSecrets bool) (Destination, error) {
	var d Destination
	var enc []byte
	if err := row.Scan(&d.ID, &d.Name, &d.Type, &d.Config, &enc, &d.SecretKeys, &d.CreatedAt, &d.UpdatedAt); err != nil {
		return Destination{}, err
	}
	if d.Config == nil {
		d.Config = map[string]any{}
	}
	if withSecrets {
		m, err := s.openSecrets(d.ID, enc)
		if err != nil {
			return Destination{}, err
		}
		d.Secrets = m
	}
	return d, nil
}

// CreateDestination stores a new destination, its secret fields encrypted.
func (s *Store) CreateDestination(ctx context.Context, in DestinationInput) (Destination, error) {
	plain, secret, _, err := splitSecrets(in.Config)
	if err != nil {
		return Destination{}, fmt.Errorf("create destination %s: %w", in.Name, err)
	}
	// The id is taken first because the sealed secrets are bound to it.
	var id int64
	if err := s.pool.QueryRow(ctx, `SELECT nextval(pg_get_serial_sequence('destinations', 'id'))`).Scan(&id); err != nil {
		return Destination{}, fmt.Errorf("create destination %s: %w", in.Name, err)
	}
	enc, keys, err := s.sealSecrets(id, secret)
	if err != nil {
		return Destination{}, fmt.Errorf("create destination %s: %w", in.Name, err)
	}
	row := s.pool.QueryRow(ctx, `INSERT INTO destinations (id, name, type, config, secrets, secret_keys)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING `+destinationColumns, id, in.Name, in.Type, plain, enc, keys)
	d, err := s.scanDestination(row, false)
	if err != nil {
		return Destination{}, fmt.Errorf("create destination %s: %w", in.Name, destinationWriteError(in, err))
	}
	return d, nil
}

// UpdateDestination replaces a destination's name, type and config, merging
// secret fields as DestinationInput describes.
func (s *Store) UpdateDestination(ctx context.Context, id int64, in DestinationInput) (Destination, error) {
	plain, secret, cleared, err := splitSecrets(in.Config)
	if err != nil {
		return Destination{}, fmt.Errorf("update destination %d: %w", id, err)
	}
	var out Destination
	err = s.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		var enc []byte
		// Lock the row so that two concurrent updates merge secrets in turn.
		if err := tx.QueryRow(ctx, `SELECT secrets FROM destinations WHERE id = $1 FOR UPDATE`, id).Scan(&enc); err != nil {
			return err
		}
		stored, err := s.openSecrets(id, enc)
		if err != nil {
			return err
		}
		for k, v := range secret {
			stored[k] = v
		}
		for _, k := range cleared {
			delete(stored, k)
		}
		newEnc, keys, err := s.sealSecrets(id, stored)
		if err != nil {
			return err
		}
		row := tx.QueryRow(ctx, `UPDATE destinations SET name = $2, type = $3, config = $4, secrets = $5, secret_keys = $6, updated_at = now()
			WHERE id = $1 RETURNING `+destinationColumns, id, in.Name, in.Type, plain, newEnc, keys)
		out, err = s.scanDestination(row, false)
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return Destination{}, fmt.Errorf("update destination %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Destination{}, fmt.Errorf("update destination %d: %w", id, destinationWriteError(in, err))
	}
	return out, nil
}

func destinationWriteError(in DestinationInput, err error) error {
	if pe, ok := pgErr(err); ok && pe.Code == codeUniqueViolation && pe.ConstraintName == "destinations_name_key" {
		return &ConflictError{Field: "name", Msg: fmt.Sprintf("a destination named %q already exists", in.Name)}
	}
	return err
}

// GetDestination returns a destination without its secrets.
func (s *Store) GetDestination(ctx context.Context, id int64) (Destination, error) {
	return s.getDestination(ctx, id, false)
}

// DestinationWithSecrets returns a destination with Secrets decrypted, for
// the sink that writes to it.
func (s *Store) DestinationWithSecrets(ctx context.Context, id int64) (Destination, error) {
	return s.getDestination(ctx, id, true)
}

func (s *Store) getDestination(ctx context.Context, id int64, withSecrets bool) (Destination, error) {
	d, err := s.scanDestination(s.pool.QueryRow(ctx, `SELECT `+destinationColumns+` FROM destinations WHERE id = $1`, id), withSecrets)
	if errors.Is(err, pgx.ErrNoRows) {
		return Destination{}, fmt.Errorf("destination %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Destination{}, fmt.Errorf("read destination %d: %w", id, err)
	}
	return d, nil
}

// ListDestinations returns a page of destinations ordered by id, without
// secrets, and the number of destinations.
func (s *Store) ListDestinations(ctx context.Context, p Page) ([]Destination, int64, error) {
	p = p.normalized()
	var out []Destination
	var total int64
	err := s.inTx(ctx, readTx(), func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM destinations`).Scan(&total); err != nil {
			return err
		}
		var err error
		out, err = s.queryDestinations(ctx, tx, false, `SELECT `+destinationColumns+` FROM destinations ORDER BY id LIMIT $1 OFFSET $2`, p.Limit, p.Offset)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list destinations: %w", err)
	}
	return out, total, nil
}

// ListAllDestinations returns every destination with Secrets decrypted, for
// services.
func (s *Store) ListAllDestinations(ctx context.Context) ([]Destination, error) {
	out, err := s.queryDestinations(ctx, s.pool, true, `SELECT `+destinationColumns+` FROM destinations ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list destinations: %w", err)
	}
	return out, nil
}

func (s *Store) queryDestinations(ctx context.Context, q querier, withSecrets bool, sql string, args ...any) ([]Destination, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Destination{}
	for rows.Next() {
		d, err := s.scanDestination(rows, withSecrets)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// DeleteDestination removes a destination. One used by a pipeline is
// refused with a *ConflictError naming the pipelines.
func (s *Store) DeleteDestination(ctx context.Context, id int64) error {
	err := s.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		users, err := collectNames(ctx, tx, `SELECT p.name FROM pipelines p JOIN pipeline_destinations pd ON pd.pipeline_id = p.id
			WHERE pd.destination_id = $1 ORDER BY p.name`, id)
		if err != nil {
			return err
		}
		if len(users) > 0 {
			return inUse("destination", id, users, "remove the destination from them or delete them first")
		}
		tag, err := tx.Exec(ctx, `DELETE FROM destinations WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		return nil
	})
	if pe, ok := pgErr(err); ok && pe.Code == codeForeignKeyViolation {
		err = &ConflictError{Msg: fmt.Sprintf("destination %d is used by a pipeline: remove it from the pipeline first", id)}
	}
	if err != nil {
		return fmt.Errorf("delete destination %d: %w", id, err)
	}
	return nil
}
