package pgrepl

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rosettacdc/rosetta/pkg/natsx"
)

// CheckAdoptedPublication checks a publication someone else manages (a
// source with adopt_publication): it must exist, publish every kind of
// change and cover tables, by name, schema or FOR ALL TABLES. Rosetta
// never alters it; each shortfall is reported with the statement its owner
// can run.
func CheckAdoptedPublication(ctx context.Context, conn *pgx.Conn, name string, tables []natsx.Table) error {
	pub := pgx.Identifier{name}.Sanitize()
	var ins, upd, del, trunc bool
	err := conn.QueryRow(ctx,
		"SELECT pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_catalog.pg_publication WHERE pubname = $1",
		name).Scan(&ins, &upd, &del, &trunc)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("publication %s does not exist on the source; it is adopted (adopt_publication), so Rosetta does not create it: "+
			"ask its owner to run CREATE PUBLICATION %s FOR TABLE %s", name, pub, tableList(normalizeTables(tables)))
	}
	if err != nil {
		return fmt.Errorf("read publication %s: %w", name, err)
	}
	var missingOps []string
	for _, op := range []struct {
		name string
		on   bool
	}{{"insert", ins}, {"update", upd}, {"delete", del}, {"truncate", trunc}} {
		if !op.on {
			missingOps = append(missingOps, op.name)
		}
	}
	if len(missingOps) > 0 {
		return fmt.Errorf("adopted publication %s does not publish %s, so those changes would be lost: ask its owner to run ALTER PUBLICATION %s SET (publish = '%s')",
			name, strings.Join(missingOps, ", "), pub, publishOps)
	}
	rows, err := conn.Query(ctx, "SELECT schemaname::text, tablename::text FROM pg_catalog.pg_publication_tables WHERE pubname = $1", name)
	if err != nil {
		return fmt.Errorf("list tables of publication %s: %w", name, err)
	}
	have, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (natsx.Table, error) {
		var t natsx.Table
		err := r.Scan(&t.Schema, &t.Name)
		return t, err
	})
	if err != nil {
		return fmt.Errorf("list tables of publication %s: %w", name, err)
	}
	var missing []natsx.Table
	for _, t := range normalizeTables(tables) {
		if !slices.Contains(have, t) {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("adopted publication %s does not publish %s: ask its owner to run ALTER PUBLICATION %s ADD TABLE %s",
			name, tableList(missing), pub, tableList(missing))
	}
	return nil
}

// Existing says which of a slot and a publication exist on the source.
func Existing(ctx context.Context, conn *pgx.Conn, slot, publication string) (slotExists, pubExists bool, err error) {
	err = conn.QueryRow(ctx, `SELECT
		EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = $1),
		EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = $2)`, slot, publication).Scan(&slotExists, &pubExists)
	if err != nil {
		return false, false, fmt.Errorf("look up slot %s and publication %s: %w", slot, publication, err)
	}
	return slotExists, pubExists, nil
}

// DropSlot drops a replication slot Rosetta manages, ending the walsender
// that holds it first (a capture that has not yet stopped for a deleted
// source), and retrying while it is taken again, until ctx ends. A slot
// that does not exist is not an error.
func DropSlot(ctx context.Context, conn *pgx.Conn, name string) error {
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		if _, err := conn.Exec(ctx, `SELECT pg_catalog.pg_terminate_backend(active_pid)
			FROM pg_catalog.pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`, name); err != nil {
			return fmt.Errorf("end the walsender of slot %s: %w", name, err)
		}
		_, err := conn.Exec(ctx, `SELECT pg_catalog.pg_drop_replication_slot(slot_name)
			FROM pg_catalog.pg_replication_slots WHERE slot_name = $1`, name)
		if err == nil {
			return nil
		}
		// 55006 object_in_use: the walsender had not exited yet, or a
		// capture took the slot again.
		if !isObjectInUse(err) {
			return fmt.Errorf("drop replication slot %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("drop replication slot %s: still in use: %w", name, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// DropPublication drops a publication Rosetta manages, if it exists.
func DropPublication(ctx context.Context, conn *pgx.Conn, name string) error {
	if _, err := conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("drop publication %s: %w", name, err)
	}
	return nil
}
