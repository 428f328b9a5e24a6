package walmonitor

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rosettacdc/rosetta/pkg/configstore"
)

// walQuery reads the source's current WAL position and, when the slot
// exists, what it retains. pg_replication_slots is readable by any role.
const walQuery = `
	SELECT pg_current_wal_lsn()::text, s.found, s.retained, s.wal_status, s.safe_wal_size
	FROM (SELECT 1) one
	LEFT JOIN (
		SELECT true AS found,
		       (pg_current_wal_lsn() - restart_lsn)::bigint AS retained,
		       wal_status::text AS wal_status,
		       safe_wal_size::bigint AS safe_wal_size
		FROM pg_replication_slots WHERE slot_name = $1
	) s ON true`

// ErrSlotMissing is the error of a check whose source has no slot yet (its
// capture never ran) or lost it.
var ErrSlotMissing = errors.New("replication slot does not exist")

// Check connects to src, reads its slot's WAL retention and disconnects.
// ctx bounds the whole check. The returned error never holds the password.
func Check(ctx context.Context, src configstore.Source) (Sample, error) {
	x := Sample{SourceID: src.ID, At: time.Now().UTC()}
	cfg, err := sourceConfig(src)
	if err != nil {
		return x, fmt.Errorf("source %d connection settings (host %s, port %d, database %s): %s", src.ID, src.Host, src.Port, src.Database, redact(err.Error(), src.Password))
	}
	cfg.RuntimeParams["application_name"] = "rosetta-wal-monitor"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return x, fmt.Errorf("connect to source %d (%s:%d/%s): %s", src.ID, src.Host, src.Port, src.Database, redact(err.Error(), src.Password))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var (
		lsn      string
		found    *bool
		retained *int64
		status   *string
		safe     *int64
	)
	if err := conn.QueryRow(ctx, walQuery, src.Slot).Scan(&lsn, &found, &retained, &status, &safe); err != nil {
		return x, fmt.Errorf("read wal of source %d slot %s: %s", src.ID, src.Slot, redact(err.Error(), src.Password))
	}
	x.WALLSN = &lsn
	if found == nil {
		return x, fmt.Errorf("source %d: slot %s: %w", src.ID, src.Slot, ErrSlotMissing)
	}
	x.RetainedBytes, x.WALStatus, x.SafeWALSize = retained, status, safe
	return x, nil
}

// sourceConfig is a source's connection config with its password and
// TLS settings (the source's, as every connection to it uses).
func sourceConfig(s configstore.Source) (*pgx.ConnConfig, error) {
	q := func(v string) string { return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'" }
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d dbname=%s user=%s sslmode=disable",
		q(s.Host), s.Port, q(s.Database), q(s.User)))
	if err != nil {
		return nil, err
	}
	cfg.Password = s.Password
	if err := s.Security().Apply(&cfg.Config); err != nil {
		return nil, err
	}
	return cfg, nil
}

func redact(msg, password string) string {
	if len(password) < 3 {
		return msg
	}
	msg = strings.ReplaceAll(msg, password, "[redacted]")
	return strings.ReplaceAll(msg, url.QueryEscape(password), "[redacted]")
}
