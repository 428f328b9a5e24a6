package pgrepl

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rosettacdc/rosetta/pkg/natsx"
)

// ErrWALLevel means the source does not run with wal_level = logical, so it
// cannot do logical replication at all.
var ErrWALLevel = errors.New("source wal_level is not logical")

// ErrSlotInvalidated means the source removed WAL the replication slot still
// needed (max_slot_wal_keep_size was exceeded): changes between the slot's
// position and now are gone. It is terminal: the slot is never recreated
// silently, since that would skip the lost changes without anyone noticing.
var ErrSlotInvalidated = errors.New("replication slot invalidated")

// publishOps is what a Rosetta publication publishes; Rosetta needs every
// kind of change.
const publishOps = "insert, update, delete, truncate"

var slotNameRE = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// ValidateSlotName checks name against PostgreSQL's rule for replication
// slot names (lower-case letters, digits and underscores, at most 63). The
// replication protocol takes the name unquoted, so nothing else may pass.
func ValidateSlotName(name string) error {
	if !slotNameRE.MatchString(name) {
		return fmt.Errorf("replication slot name %q: use 1 to 63 lower-case letters, digits and underscores", name)
	}
	return nil
}

// CheckWALLevel returns an error wrapping ErrWALLevel, saying how to fix it,
// unless the source runs with wal_level = logical.
func CheckWALLevel(ctx context.Context, conn *pgx.Conn) error {
	var level string
	if err := conn.QueryRow(ctx, "SELECT current_setting('wal_level')").Scan(&level); err != nil {
		return fmt.Errorf("read wal_level: %w", err)
	}
	if level != "logical" {
		return fmt.Errorf("%w (it is %q): set wal_level = logical (ALTER SYSTEM SET wal_level = logical; "+
			"on a managed service the equivalent parameter, e.g. rds.logical_replication = 1) and restart PostgreSQL",
			ErrWALLevel, level)
	}
	return nil
}

// EnsurePublication makes publication name publish exactly tables, with
// every kind of change. It creates the publication when absent, otherwise
// it changes the table list (ALTER PUBLICATION … SET TABLE) only when it
// differs. It is idempotent. A publication FOR ALL TABLES is left as it is:
// it already covers the tables.
//
// On PostgreSQL 13 and later the publication publishes via the partition
// root (publish_via_partition_root): a partitioned table named in tables
// has its partitions' changes published under its own name and schema,
// which is the table the pipeline follows. Without it they are published
// under each partition's name, to subjects no consumer of the pipeline
// follows, and lost. A partition named on its own (its root not in the
// publication) is still published under its own name.
//
// The connection's role must own the tables (PostgreSQL's rule for adding
// a table to a publication).
func EnsurePublication(ctx context.Context, conn *pgx.Conn, name string, tables []natsx.Table) error {
	if name == "" {
		return fmt.Errorf("ensure publication: name is empty")
	}
	want := normalizeTables(tables)
	pub := pgx.Identifier{name}.Sanitize()
	var viaRootSupported bool
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int >= 130000").Scan(&viaRootSupported); err != nil {
		return fmt.Errorf("read server version: %w", err)
	}

	var allTables, ins, upd, del, trunc bool
	err := conn.QueryRow(ctx,
		"SELECT puballtables, pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_catalog.pg_publication WHERE pubname = $1",
		name).Scan(&allTables, &ins, &upd, &del, &trunc)
	if errors.Is(err, pgx.ErrNoRows) {
		sql := "CREATE PUBLICATION " + pub
		if len(want) > 0 {
			sql += " FOR TABLE " + tableList(want)
		}
		sql += " WITH (publish = '" + publishOps + "'"
		if viaRootSupported {
			sql += ", publish_via_partition_root = true"
		}
		sql += ")"
		// err, not a new one: the re-read below must replace the
		// ErrNoRows checked after this block.
		_, err = conn.Exec(ctx, sql)
		if err == nil {
			return nil
		}
		if !isDuplicateObject(err) {
			return fmt.Errorf("create publication %s: %w", name, err)
		}
		// Created concurrently: fall through to bring it to the wanted state.
		err = conn.QueryRow(ctx,
			"SELECT puballtables, pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_catalog.pg_publication WHERE pubname = $1",
			name).Scan(&allTables, &ins, &upd, &del, &trunc)
	}
	if err != nil {
		return fmt.Errorf("read publication %s: %w", name, err)
	}
	if !(ins && upd && del && trunc) {
		if _, err := conn.Exec(ctx, "ALTER PUBLICATION "+pub+" SET (publish = '"+publishOps+"')"); err != nil {
			return fmt.Errorf("alter publication %s publish: %w", name, err)
		}
	}
	if viaRootSupported {
		var viaRoot bool
		if err := conn.QueryRow(ctx, "SELECT pubviaroot FROM pg_catalog.pg_publication WHERE pubname = $1", name).Scan(&viaRoot); err != nil {
			return fmt.Errorf("read publication %s: %w", name, err)
		}
		if !viaRoot {
			if _, err := conn.Exec(ctx, "ALTER PUBLICATION "+pub+" SET (publish_via_partition_root = true)"); err != nil {
				return fmt.Errorf("alter publication %s publish_via_partition_root: %w", name, err)
			}
		}
	}
	if allTables {
		return nil
	}
	have, err := PublicationTables(ctx, conn, name)
	if err != nil {
		return err
	}
	if slices.Equal(have, want) {
		return nil
	}
	var sql string
	if len(want) == 0 {
		// SET TABLE needs at least one table; drop the ones there are.
		sql = "ALTER PUBLICATION " + pub + " DROP TABLE " + tableList(have)
	} else {
		sql = "ALTER PUBLICATION " + pub + " SET TABLE " + tableList(want)
	}
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("alter publication %s tables: %w", name, err)
	}
	return nil
}

// PublicationTables lists the tables explicitly added to a publication,
// sorted by schema and name.
func PublicationTables(ctx context.Context, conn *pgx.Conn, name string) ([]natsx.Table, error) {
	rows, err := conn.Query(ctx, `
SELECT n.nspname, c.relname
FROM pg_catalog.pg_publication_rel pr
JOIN pg_catalog.pg_publication p ON p.oid = pr.prpubid
JOIN pg_catalog.pg_class c ON c.oid = pr.prrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE p.pubname = $1`, name)
	if err != nil {
		return nil, fmt.Errorf("list tables of publication %s: %w", name, err)
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (natsx.Table, error) {
		var t natsx.Table
		err := r.Scan(&t.Schema, &t.Name)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("list tables of publication %s: %w", name, err)
	}
	return normalizeTables(tables), nil
}

// Slot is a replication slot as pg_replication_slots shows it.
type Slot struct {
	Name     string
	Plugin   string
	SlotType string
	Database string
	// WALStatus is reserved, extended, unreserved or lost (PostgreSQL 13+).
	WALStatus         string
	Active            bool
	ConfirmedFlushLSN pglogrepl.LSN
}

// ReadSlot reads slot name; found is false when it does not exist.
func ReadSlot(ctx context.Context, conn *pgx.Conn, name string) (s Slot, found bool, err error) {
	var confirmed string
	err = conn.QueryRow(ctx, `
SELECT slot_name::text, coalesce(plugin::text, ''), slot_type, coalesce(database::text, ''),
       coalesce(wal_status, ''), active, coalesce(confirmed_flush_lsn, '0/0')::text
FROM pg_catalog.pg_replication_slots WHERE slot_name = $1`, name).
		Scan(&s.Name, &s.Plugin, &s.SlotType, &s.Database, &s.WALStatus, &s.Active, &confirmed)
	if errors.Is(err, pgx.ErrNoRows) {
		return Slot{}, false, nil
	}
	if err != nil {
		return Slot{}, false, fmt.Errorf("read replication slot %s: %w", name, err)
	}
	if s.ConfirmedFlushLSN, err = pglogrepl.ParseLSN(confirmed); err != nil {
		return Slot{}, false, fmt.Errorf("read replication slot %s: %w", name, err)
	}
	return s, true, nil
}

// EnsureSlot creates the logical replication slot name with the pgoutput
// plugin when it does not exist. An existing slot must be a pgoutput slot
// of the connection's database whose WAL is still there; an invalidated
// slot returns an error wrapping ErrSlotInvalidated and is left alone.
//
// A new slot starts at the current end of WAL: changes committed before it
// was created are not captured (that is what a snapshot/backfill is for).
// The connection's role needs the REPLICATION attribute.
func EnsureSlot(ctx context.Context, conn *pgx.Conn, name string) error {
	if err := ValidateSlotName(name); err != nil {
		return err
	}
	s, found, err := ReadSlot(ctx, conn, name)
	if err != nil {
		return err
	}
	if !found {
		_, err := conn.Exec(ctx, "SELECT pg_catalog.pg_create_logical_replication_slot($1, 'pgoutput')", name)
		if err == nil {
			return nil
		}
		if !isDuplicateObject(err) {
			return fmt.Errorf("create replication slot %s: %w", name, err)
		}
		// Created concurrently; check what is there.
		if s, found, err = ReadSlot(ctx, conn, name); err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("create replication slot %s: reported as existing but not found", name)
		}
	}
	var db string
	if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
		return fmt.Errorf("read current database: %w", err)
	}
	return checkSlot(s, db)
}

func checkSlot(s Slot, db string) error {
	if s.SlotType != "logical" || s.Plugin != "pgoutput" {
		return fmt.Errorf("replication slot %s is a %s slot with plugin %q, not a pgoutput logical slot: choose another slot name or drop it",
			s.Name, s.SlotType, s.Plugin)
	}
	if s.Database != db {
		return fmt.Errorf("replication slot %s belongs to database %q, not %q: choose another slot name", s.Name, s.Database, db)
	}
	if s.WALStatus == "lost" {
		return fmt.Errorf("%w: slot %s lost WAL it needed (the source exceeded max_slot_wal_keep_size), so changes since its "+
			"last confirmed position are gone; drop the slot (SELECT pg_drop_replication_slot('%s')) to let capture create a new one, "+
			"then backfill the source's tables", ErrSlotInvalidated, s.Name, s.Name)
	}
	return nil
}

// isDuplicateObject reports whether a CREATE lost a race with another
// session creating the same object. PostgreSQL reports it two ways: as
// duplicate_object (42710) when the other session had committed before
// the CREATE looked, and as a unique_violation (23505) on the catalog's
// name index when both looked before either committed.
func isDuplicateObject(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return pgErr.Code == "42710" || pgErr.Code == "23505" && strings.HasPrefix(pgErr.ConstraintName, "pg_")
}

func isObjectInUse(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "55006"
}

// normalizeTables sorts tables and drops duplicates, so table sets compare
// with slices.Equal.
func normalizeTables(tables []natsx.Table) []natsx.Table {
	out := slices.Clone(tables)
	slices.SortFunc(out, func(a, b natsx.Table) int {
		if c := strings.Compare(a.Schema, b.Schema); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return slices.Compact(out)
}

func tableList(tables []natsx.Table) string {
	parts := make([]string, len(tables))
	for i, t := range tables {
		parts[i] = pgx.Identifier{t.Schema, t.Name}.Sanitize()
	}
	return strings.Join(parts, ", ")
}
