package configstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/rosettacdc/rosetta/pkg/pglink"
	"github.com/rosettacdc/rosetta/pkg/secrets"
)

// SourceInput is what an admin sets on a source.
type SourceInput struct {
	Name     string
	Host     string
	Port     int
	Database string
	User     string
	// Password nil keeps the stored password on update (none on create);
	// "" removes it.
	Password *string
	// Publication and Slot "" derive a name on create (DerivedName) and
	// keep the stored one on update.
	Publication string
	Slot        string
	// SSLMode "" means "prefer" on create and keeps the stored one on update.
	SSLMode string
	// AdoptSlot and AdoptPublication hand Rosetta a slot or publication
	// someone else created: used as they are, never altered or dropped.
	// nil keeps the stored value on update (false on create).
	AdoptSlot, AdoptPublication *bool
	// SSLRootCert, SSLCert, RequireAuth and ChannelBinding nil keep the
	// stored value on update ("" on create); "" clears it. SSLKey is
	// sealed like Password, with the same nil and "" rules.
	SSLRootCert, SSLCert, SSLKey, RequireAuth, ChannelBinding *string
	// Partitions nil keeps the stored value on update (1 on create). A
	// change is refused with a ConflictError while the source has
	// pipelines: it would move keys to other partitions, and a key's
	// changes on its old and new partition would no longer be in order.
	Partitions *int
}

const sourceColumns = `id, name, host, port, database, username, password_enc, publication, slot, sslmode, adopt_slot, adopt_publication,
	sslrootcert, sslcert, sslkey_enc, require_auth, channel_binding, partitions, created_at, updated_at`

// scanSource reads one row of sourceColumns; it decrypts the password only
// when withSecret is set.
func (s *Store) scanSource(row pgx.Row, withSecret bool) (Source, error) {
	var src Source
	var enc, keyEnc []byte
	if err := row.Scan(&src.ID, &src.Name, &src.Host, &src.Port, &src.Database, &src.User, &enc,
		&src.Publication, &src.Slot, &src.SSLMode, &src.AdoptSlot, &src.AdoptPublication,
		&src.SSLRootCert, &src.SSLCert, &keyEnc, &src.RequireAuth, &src.ChannelBinding, &src.Partitions, &src.CreatedAt, &src.UpdatedAt); err != nil {
		return Source{}, err
	}
	src.PasswordSet, src.SSLKeySet = enc != nil, keyEnc != nil
	if withSecret && enc != nil {
		pw, err := s.box.OpenString(enc, sourcePasswordBinding(src.ID))
		if err != nil {
			return Source{}, fmt.Errorf("decrypt password of source %d: %w", src.ID, err)
		}
		src.Password = pw
	}
	if withSecret && keyEnc != nil {
		key, err := s.box.OpenString(keyEnc, sourceKeyBinding(src.ID))
		if err != nil {
			return Source{}, fmt.Errorf("decrypt sslkey of source %d: %w", src.ID, err)
		}
		src.SSLKey = key
	}
	return src, nil
}

// sourceKeyBinding binds a source's sealed client key to its row.
func sourceKeyBinding(id int64) string { return secrets.Binding("sources", id, "sslkey") }

// sourcePasswordBinding binds a source's sealed password to its row, so it
// opens nowhere else.
func sourcePasswordBinding(id int64) string { return secrets.Binding("sources", id, "password") }

func (s *Store) sealPassword(id int64, pw *string) ([]byte, error) {
	return s.sealSourceSecret(pw, sourcePasswordBinding(id), "password")
}

func (s *Store) sealSourceSecret(v *string, binding, what string) ([]byte, error) {
	if v == nil || *v == "" {
		return nil, nil
	}
	enc, err := s.box.SealString(*v, binding)
	if err != nil {
		return nil, fmt.Errorf("encrypt %s: %w", what, err)
	}
	return enc, nil
}

// CreateSource stores a new source, deriving its publication and slot
// names when they are empty.
func (s *Store) CreateSource(ctx context.Context, in SourceInput) (Source, error) {
	if in.SSLMode == "" {
		in.SSLMode = pglink.DefaultSSLMode
	}
	var out Source
	err := s.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		// The id is taken first because the derived names contain it and
		// the sealed password is bound to it.
		var id int64
		var inst string
		if err := tx.QueryRow(ctx, `SELECT nextval(pg_get_serial_sequence('sources', 'id')), (SELECT id FROM installation)`).Scan(&id, &inst); err != nil {
			return err
		}
		enc, err := s.sealPassword(id, in.Password)
		if err != nil {
			return err
		}
		keyEnc, err := s.sealSourceSecret(in.SSLKey, sourceKeyBinding(id), "sslkey")
		if err != nil {
			return err
		}
		pub, slot := in.Publication, in.Slot
		if pub == "" {
			pub = DerivedName(inst, id)
		}
		if slot == "" {
			slot = DerivedName(inst, id)
		}
		row := tx.QueryRow(ctx, `INSERT INTO sources (id, name, host, port, database, username, password_enc, publication, slot, sslmode, adopt_slot, adopt_publication,
				sslrootcert, sslcert, sslkey_enc, require_auth, channel_binding, partitions)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, COALESCE($11, false), COALESCE($12, false),
				COALESCE($13, ''), COALESCE($14, ''), $15, COALESCE($16, ''), COALESCE($17, ''), COALESCE($18, 1)) RETURNING `+sourceColumns,
			id, in.Name, in.Host, in.Port, in.Database, in.User, enc, pub, slot, in.SSLMode, in.AdoptSlot, in.AdoptPublication,
			in.SSLRootCert, in.SSLCert, keyEnc, in.RequireAuth, in.ChannelBinding, in.Partitions)
		out, err = s.scanSource(row, false)
		return err
	})
	if err != nil {
		return Source{}, fmt.Errorf("create source %s: %w", in.Name, sourceWriteError(in, err))
	}
	return out, nil
}

// UpdateSource replaces a source's settings; see SourceInput for the fields
// an empty value keeps.
func (s *Store) UpdateSource(ctx context.Context, id int64, in SourceInput) (Source, error) {
	enc, err := s.sealPassword(id, in.Password)
	if err != nil {
		return Source{}, fmt.Errorf("update source %d: %w", id, err)
	}
	keyEnc, err := s.sealSourceSecret(in.SSLKey, sourceKeyBinding(id), "sslkey")
	if err != nil {
		return Source{}, fmt.Errorf("update source %d: %w", id, err)
	}
	var out Source
	err = s.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if in.Partitions != nil {
			if err := checkPartitionsChange(ctx, tx, id, *in.Partitions); err != nil {
				return err
			}
		}
		row := tx.QueryRow(ctx, `UPDATE sources SET
				name = $2, host = $3, port = $4, database = $5, username = $6,
				password_enc = CASE WHEN $7 THEN $8 ELSE password_enc END,
				publication = COALESCE(NULLIF($9, ''), publication),
				slot = COALESCE(NULLIF($10, ''), slot),
				sslmode = COALESCE(NULLIF($11, ''), sslmode),
				adopt_slot = COALESCE($12, adopt_slot),
				adopt_publication = COALESCE($13, adopt_publication),
				sslrootcert = COALESCE($14, sslrootcert),
				sslcert = COALESCE($15, sslcert),
				sslkey_enc = CASE WHEN $16 THEN $17 ELSE sslkey_enc END,
				require_auth = COALESCE($18, require_auth),
				channel_binding = COALESCE($19, channel_binding),
				partitions = COALESCE($20, partitions),
				updated_at = now()
			WHERE id = $1 RETURNING `+sourceColumns,
			id, in.Name, in.Host, in.Port, in.Database, in.User, in.Password != nil, enc, in.Publication, in.Slot, in.SSLMode, in.AdoptSlot, in.AdoptPublication,
			in.SSLRootCert, in.SSLCert, in.SSLKey != nil, keyEnc, in.RequireAuth, in.ChannelBinding, in.Partitions)
		out, err = s.scanSource(row, false)
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return Source{}, fmt.Errorf("update source %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Source{}, fmt.Errorf("update source %d: %w", id, sourceWriteError(in, err))
	}
	return out, nil
}

// checkPartitionsChange refuses a new partition count for a source that
// has pipelines. The source's row is locked first, so a pipeline created
// concurrently (its foreign key locks the row too) waits for this update
// and is then provisioned with the new count.
func checkPartitionsChange(ctx context.Context, tx pgx.Tx, id int64, partitions int) error {
	var have int
	var pipelines []string
	err := tx.QueryRow(ctx, `SELECT s.partitions,
			ARRAY(SELECT p.name FROM pipelines p WHERE p.source_id = s.id ORDER BY p.id)
		FROM sources s WHERE s.id = $1 FOR UPDATE OF s`, id).Scan(&have, &pipelines)
	if err != nil {
		return err // pgx.ErrNoRows: reported as not found by the caller
	}
	if have == partitions || len(pipelines) == 0 {
		return nil
	}
	return &ConflictError{Field: "partitions", Msg: fmt.Sprintf("cannot change partitions from %d to %d: "+
		"source %d has pipelines (%s), and a new partition count moves keys to other partitions, so a key's changes "+
		"would no longer arrive in order; delete and re-create its pipelines, or create a new source with the partitions you want",
		have, partitions, id, strings.Join(pipelines, ", "))}
}

func sourceWriteError(in SourceInput, err error) error {
	pe, ok := pgErr(err)
	if !ok || pe.Code != codeUniqueViolation {
		return err
	}
	switch pe.ConstraintName {
	case "sources_name_key":
		return &ConflictError{Field: "name", Msg: fmt.Sprintf("a source named %q already exists", in.Name)}
	case "sources_slot_key":
		return &ConflictError{Field: "slot", Msg: fmt.Sprintf("another source on %s:%d already uses this replication slot: choose another slot", in.Host, in.Port)}
	case "sources_publication_key":
		return &ConflictError{Field: "publication", Msg: fmt.Sprintf("another source on database %s at %s:%d already uses this publication: choose another publication", in.Database, in.Host, in.Port)}
	}
	return err
}

// GetSource returns a source without its password.
func (s *Store) GetSource(ctx context.Context, id int64) (Source, error) {
	return s.getSource(ctx, id, false)
}

// SourceWithSecrets returns a source with its password decrypted.
func (s *Store) SourceWithSecrets(ctx context.Context, id int64) (Source, error) {
	return s.getSource(ctx, id, true)
}

func (s *Store) getSource(ctx context.Context, id int64, withSecret bool) (Source, error) {
	src, err := s.scanSource(s.pool.QueryRow(ctx, `SELECT `+sourceColumns+` FROM sources WHERE id = $1`, id), withSecret)
	if errors.Is(err, pgx.ErrNoRows) {
		return Source{}, fmt.Errorf("source %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Source{}, fmt.Errorf("read source %d: %w", id, err)
	}
	return src, nil
}

// ListSources returns a page of sources ordered by id, without passwords,
// and the number of sources.
func (s *Store) ListSources(ctx context.Context, p Page) ([]Source, int64, error) {
	p = p.normalized()
	var out []Source
	var total int64
	err := s.inTx(ctx, readTx(), func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM sources`).Scan(&total); err != nil {
			return err
		}
		var err error
		out, err = s.querySources(ctx, tx, false, `SELECT `+sourceColumns+` FROM sources ORDER BY id LIMIT $1 OFFSET $2`, p.Limit, p.Offset)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list sources: %w", err)
	}
	return out, total, nil
}

// ListAllSources returns every source with its password decrypted, for
// services that connect to them.
func (s *Store) ListAllSources(ctx context.Context) ([]Source, error) {
	out, err := s.querySources(ctx, s.pool, true, `SELECT `+sourceColumns+` FROM sources ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list sources: %w", err)
	}
	return out, nil
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func (s *Store) querySources(ctx context.Context, q querier, withSecret bool, sql string, args ...any) ([]Source, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Source{}
	for rows.Next() {
		src, err := s.scanSource(rows, withSecret)
		if err != nil {
			return nil, err
		}
		out = append(out, src)
	}
	return out, rows.Err()
}

// DeleteSource removes a source and its reported state. A source used by a
// pipeline is refused with a *ConflictError naming the pipelines.
func (s *Store) DeleteSource(ctx context.Context, id int64) error {
	err := s.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		users, err := collectNames(ctx, tx, `SELECT name FROM pipelines WHERE source_id = $1 ORDER BY name`, id)
		if err != nil {
			return err
		}
		if len(users) > 0 {
			return inUse("source", id, users, "delete those pipelines first")
		}
		tag, err := tx.Exec(ctx, `DELETE FROM sources WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrNotFound
		}
		return nil
	})
	if pe, ok := pgErr(err); ok && pe.Code == codeForeignKeyViolation {
		// A pipeline was created between the check and the delete.
		err = &ConflictError{Msg: fmt.Sprintf("source %d is used by a pipeline: delete or change the pipeline first", id)}
	}
	if err != nil {
		return fmt.Errorf("delete source %d: %w", id, err)
	}
	return nil
}

func collectNames(ctx context.Context, q querier, sql string, args ...any) ([]string, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	return names, nil
}

func inUse(kind string, id int64, pipelines []string, fix string) *ConflictError {
	what := "pipeline"
	if len(pipelines) > 1 {
		what = "pipelines"
	}
	quoted := ""
	for i, p := range pipelines {
		if i > 0 {
			quoted += ", "
		}
		quoted += fmt.Sprintf("%q", p)
	}
	return &ConflictError{Msg: fmt.Sprintf("%s %d is used by %s %s: %s", kind, id, what, quoted, fix)}
}
