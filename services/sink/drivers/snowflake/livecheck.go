package snowflake

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/destcheck"
)

// LiveCheckRows is the number of rows the live check round-trips.
const LiveCheckRows = 300

// LiveCheck runs, against the destination a stored config (secrets
// included) points at, what `rosetta check-destination` reports: the login,
// the session steps of Check (temporary table, stage PUT and REMOVE,
// warehouse DML and query), then a round trip of LiveCheckRows rows holding
// every mapped type (liveColumns) through the driver's own path (staging
// file, PUT, COPY, version-guarded MERGE: a batch of inserts, then one of
// updates and deletes) into a transient table ROSETTA_CHECK_<hex> in the
// configured schema, read back and compared value by value, one result per
// type. The table and its tombstone table are dropped at the end. Unlike
// Check it also reads a key given by private_key_path (the caller is
// expected to run where the sink runs). It stops at the first failed
// capability; it never returns a partial report without saying why.
func LiveCheck(ctx context.Context, raw json.RawMessage, log *slog.Logger) destcheck.Report {
	var rep destcheck.Report
	cfg, err := decodeConfig(raw)
	if err != nil {
		rep.Add("config", false, configCheckError(err).Error())
		return rep
	}
	key, err := checkKey(cfg)
	if err != nil {
		rep.Add("private key", false, err.Error())
		return rep
	}
	db, conn, err := checkLogin(ctx, cfg, key)
	if err != nil {
		rep.Add("login", false, fieldDetail(err))
		return rep
	}
	defer db.Close()
	defer conn.Close()
	rep.Add("login", true, fmt.Sprintf("logged in to account %s as %s", cfg.Account, cfg.User))

	steps, cleanup, err := sessionSteps(cfg)
	if err != nil {
		rep.Add("session", false, err.Error())
		return rep
	}
	defer cleanup()
	for _, st := range steps {
		if err := st.run(ctx, conn, cfg); err != nil {
			rep.Add(st.name, false, fieldDetail(err))
			return rep
		}
		rep.Add(st.name, true, strings.SplitN(st.q, " (", 2)[0])
	}
	roundTrip(ctx, &rep, cfg, conn, log)
	return rep
}

// fieldDetail is a CheckError's message with the field it blames.
func fieldDetail(err error) string {
	var ce *CheckError
	if errors.As(err, &ce) && ce.Field != "" {
		return "config." + ce.Field + ": " + err.Error()
	}
	return err.Error()
}

// roundTrip is LiveCheck's type round trip; conn reads back.
func roundTrip(ctx context.Context, rep *destcheck.Report, cfg Config, conn *sql.Conn, log *slog.Logger) {
	source := "rosetta_check_" + randomHex(6)
	table := destName(source)
	target := qualified(cfg.database, cfg.schema, table)
	tomb := qualified(cfg.database, cfg.schema, tombPrefix+table)
	inserts, updates, want := liveChanges(source)

	// The table is created TRANSIENT (no Fail-safe storage for a table
	// that lives seconds) before the driver sees it, with the DDL the
	// driver would run; the driver then finds it and uses it as is.
	batches, err := cdc.Collapse(inserts)
	if err == nil && len(batches) != 1 {
		err = fmt.Errorf("collapse made %d batches", len(batches))
	}
	var cols []stageColumn
	if err == nil {
		cols, err = mapColumns(batches[0])
	}
	if err != nil {
		rep.Add("round trip", false, fmt.Sprintf("build the check's batch: %v", err))
		return
	}
	var keys []stageColumn
	for _, c := range cols {
		if c.key {
			keys = append(keys, c)
		}
	}
	ddl := []string{transient(createTableSQL(target, cols, cfg.SoftDelete))}
	if !cfg.SoftDelete {
		ddl = append(ddl, transient(createTombSQL(tomb, keys, false)))
	}
	defer func() {
		// Dropped even when ctx is over: a check must not leave tables.
		dctx := context.WithoutCancel(ctx)
		var errs []error
		for _, t := range []string{target, tomb} {
			_, err := conn.ExecContext(dctx, "DROP TABLE IF EXISTS "+t)
			errs = append(errs, err)
		}
		if err := errors.Join(errs...); err != nil {
			rep.Add("drop table", false, fmt.Sprintf("drop %s: %v; drop it by hand", target, err))
			return
		}
		rep.Add("drop table", true, "dropped "+target)
	}()
	for _, q := range ddl {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			rep.Add("transient table", false, fmt.Sprintf("%v; the role needs CREATE TABLE on schema %s", err, ident(cfg.schema)))
			return
		}
	}
	rep.Add("transient table", true, "created "+target)

	d := New(cfg, log)
	defer d.Close()
	for i, changes := range [][]contracts.Change{inserts, updates} {
		bs, err := cdc.Collapse(changes)
		if err == nil {
			err = d.Apply(ctx, bs)
		}
		if err != nil {
			rep.Add("apply", false, fmt.Sprintf("batch %d of 2 (stage file, PUT, COPY, MERGE): %v", i+1, err))
			return
		}
	}
	rep.Add("apply", true, fmt.Sprintf("%d rows staged, COPY'd and MERGEd in 2 batches (inserts; updates and deletes)", LiveCheckRows))
	compareBack(ctx, rep, conn, target, cols, want, cfg.SoftDelete)
}

// transient makes a driver's CREATE TABLE a CREATE TRANSIENT TABLE.
func transient(ddl string) string {
	return strings.Replace(ddl, "CREATE TABLE ", "CREATE TRANSIENT TABLE ", 1)
}

// liveRow is a row the check expects: one value per liveColumns entry.
type liveRow []*string

// liveChanges are the check's two batches and the rows they leave: rows 1
// to LiveCheckRows inserted; then every tenth deleted and every third of
// the others updated to other values.
func liveChanges(table string) (inserts, updates []contracts.Change, want map[int]liveRow) {
	cols := []contracts.Column{{Name: "id", Type: "bigint", BaseType: "bigint", Key: true, Attnum: 1}}
	for n, c := range liveColumns {
		cols = append(cols, contracts.Column{Name: c.name(n + 1), Type: c.base, BaseType: c.base, Attnum: n + 2})
	}
	change := func(op contracts.Op, lsn uint64, id, valueRow int) (contracts.Change, liveRow) {
		key := contracts.Row{"id": json.RawMessage(strconv.Itoa(id))}
		ch := contracts.Change{V: contracts.EnvelopeVersion, Op: op, Columns: cols, Key: key,
			Source: contracts.Source{SourceID: 1, Schema: "rosetta_check", Table: table, CommitLSN: contracts.FormatLSN(lsn), Seq: int64(id)}}
		if op == contracts.OpDelete {
			return ch, nil
		}
		ch.After = contracts.Row{"id": key["id"]}
		row := make(liveRow, len(liveColumns))
		for n, c := range liveColumns {
			v, null := c.value(valueRow)
			if null {
				ch.After[c.name(n+1)] = json.RawMessage("null")
				continue
			}
			b, _ := json.Marshal(v) // a string cannot fail to encode
			ch.After[c.name(n+1)] = b
			row[n] = &v
		}
		return ch, row
	}
	want = map[int]liveRow{}
	for id := 1; id <= LiveCheckRows; id++ {
		ch, row := change(contracts.OpCreate, 100, id, id)
		inserts = append(inserts, ch)
		want[id] = row
	}
	for id := 1; id <= LiveCheckRows; id++ {
		switch {
		case id%10 == 0:
			ch, _ := change(contracts.OpDelete, 200, id, 0)
			updates = append(updates, ch)
			delete(want, id)
		case id%3 == 0:
			ch, row := change(contracts.OpUpdate, 200, id, id+LiveCheckRows)
			updates = append(updates, ch)
			want[id] = row
		}
	}
	return inserts, updates, want
}

// compareBack reads the check table back and adds a result for the rows
// and one per type.
func compareBack(ctx context.Context, rep *destcheck.Report, conn *sql.Conn, target string, cols []stageColumn, want map[int]liveRow, soft bool) {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = ident(c.name)
	}
	q := "SELECT " + strings.Join(names, ", ") + " FROM " + target
	if soft {
		q += " WHERE NOT " + ident(deletedCol)
	}
	rows, err := conn.QueryContext(ctx, q+" ORDER BY "+names[0])
	if err != nil {
		rep.Add("read back", false, err.Error())
		return
	}
	defer rows.Close()
	got := map[int][]sql.NullString{}
	extra := 0
	for rows.Next() {
		vals, err := scanText(rows, len(cols))
		if err != nil {
			rep.Add("read back", false, err.Error())
			return
		}
		id, _ := strconv.Atoi(vals[0].String)
		if _, ok := want[id]; !ok {
			extra++
			continue
		}
		got[id] = vals[1:]
	}
	if err := rows.Err(); err != nil {
		rep.Add("read back", false, err.Error())
		return
	}
	missing := len(want) - len(got)
	rep.Add("rows", missing == 0 && extra == 0, fmt.Sprintf("%d rows expected, %d missing, %d unexpected (deleted or never sent)", len(want), missing, extra))
	for n, c := range liveColumns {
		sc := cols[n+1]
		bad, first := 0, ""
		for id := 1; id <= LiveCheckRows; id++ {
			w, ok := want[id]
			g, found := got[id]
			if !ok || !found {
				continue
			}
			if why := compareCell(sc.typ, c.base, w[n], g[n]); why != "" {
				if bad == 0 {
					first = fmt.Sprintf("row %d: %s", id, why)
				}
				bad++
			}
		}
		detail := fmt.Sprintf("%d values equal as %s", len(got), sc.typ.sql())
		if bad > 0 {
			detail = fmt.Sprintf("%d of %d values differ in %s; first: %s", bad, len(got), sc.typ.sql(), first)
		}
		rep.Add("type "+c.base, bad == 0, detail)
	}
}

// compareCell says how a value read back differs from the one sent, or ""
// when it does not.
func compareCell(t colType, base string, sent *string, got sql.NullString) string {
	switch {
	case sent == nil && !got.Valid:
		return ""
	case sent == nil:
		return fmt.Sprintf("sent NULL, read %.60q", got.String)
	case !got.Valid:
		return fmt.Sprintf("sent %.60q, read NULL", *sent)
	}
	if ok, why := sameValue(t, base, *sent, got.String); !ok {
		return fmt.Sprintf("sent %.60q, read %.60q: %s", *sent, got.String, why)
	}
	return ""
}
