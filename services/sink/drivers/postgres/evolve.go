package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/colmark"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/relational"
)

// addColumnDDL adds a source column to an existing destination table.
//
// A column added at the source with a non-volatile default gave every row
// that existed then that value without a change for any of them; the
// change events carry it as the column's ExistingValue. The rows the
// destination holds when the column arrives are exactly those rows (every
// change written after the ALTER lists the column, so the first of them
// brings it), so the column is added with that value as its default, which
// fills them (PostgreSQL 11 and later store it once, without rewriting the
// table), and the default is dropped at once: rows written from then on
// carry their own value. Both statements run in the batch's transaction,
// before its rows are applied, so no row of the batch is overwritten; rows
// of the batch written before the ALTER were given the value by
// cdc.Collapse.
func addColumnDDL(target string, c contracts.Column) ([]string, error) {
	add := addColumnSQL(target, stageColumn{Name: c.Name, Type: columnType(c.BaseType)})
	if c.ExistingValue == "" {
		return []string{add}, nil
	}
	v, err := cdc.ValueFromJSON(json.RawMessage(c.ExistingValue))
	if err != nil {
		return nil, err
	}
	if v.Null {
		return []string{add}, nil
	}
	return []string{
		add + " DEFAULT " + quoteLiteral(v.Text),
		"ALTER TABLE " + target + " ALTER COLUMN " + ident(c.Name) + " DROP DEFAULT",
	}, nil
}

// quoteLiteral quotes s as an escape string constant (E'…'), which means
// the same whatever standard_conforming_strings is: DDL cannot take bind
// parameters. Text values never hold a NUL byte.
func quoteLiteral(s string) string {
	return "E'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(s) + "'"
}

// noOpclass matches PostgreSQL's refusal to index a type with btree:
// data type json has no default operator class for access method "btree".
var noOpclass = regexp.MustCompile(`^data type (.+) has no default operator class for access method "btree"$`)

// unindexableKey turns the refusal to create a destination table whose
// primary key holds a column of a type btree cannot index into a permanent
// error naming the table and the key columns of that type. It happens to a
// source table without a primary key under REPLICA IDENTITY FULL, whose
// every column is its key (json, xml, point … columns): no retry can
// create that table, so its changes go to the dead-letter queue, if the
// destination has one, instead of being retried forever. Other errors are
// returned as they are.
func unindexableKey(err error, table string, cols []contracts.Column) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42704" {
		return err
	}
	m := noOpclass.FindStringSubmatch(pgErr.Message)
	if m == nil {
		return err
	}
	var names []string
	for _, c := range cols {
		if c.Key && strings.TrimSuffix(columnType(c.BaseType), "[]") == m[1] {
			names = append(names, fmt.Sprintf("%q (%s)", c.Name, c.Type))
		}
	}
	return sinkrunner.PermanentClass("unindexable_key", fmt.Errorf(
		"%s: key column %s: type %s cannot be part of the destination's primary key (no btree operator class); "+
			"the source table has no primary key, so REPLICA IDENTITY FULL makes every column the key: give it a primary key: %w",
		table, strings.Join(names, ", "), m[1], err))
}

var (
	numericSpelling  = regexp.MustCompile(`^numeric\((\d+),(\d+)\)$`)
	varcharSpelling  = regexp.MustCompile(`^character varying\((\d+)\)$`)
	datetimeSpelling = regexp.MustCompile(`^(timestamp|time)(?:\((\d)\))? (with|without) time zone$`)
)

// widens reports whether changing a destination column of type dest to the
// type sent, which the source column now has, keeps every value the column
// holds exactly and lets it hold every value of dest: a wider integer, a
// longer (or unbounded) varchar, a numeric with at least as many digits
// before and after the point (or unconstrained), a finer timestamp or time
// precision. Only those are applied at the destination (ALTER COLUMN …
// TYPE, see widenColumns); any other difference is left to the exactness
// check, which refuses values the old type would change.
func widens(dest, sent string) bool {
	if dest == sent {
		return false
	}
	switch dest {
	case "smallint":
		return sent == "integer" || sent == "bigint" || sent == "numeric"
	case "integer":
		return sent == "bigint" || sent == "numeric"
	case "bigint":
		return sent == "numeric"
	}
	if m := varcharSpelling.FindStringSubmatch(dest); m != nil {
		if sent == "character varying" || sent == "text" {
			return true
		}
		if n := varcharSpelling.FindStringSubmatch(sent); n != nil {
			return atoi(n[1]) >= atoi(m[1])
		}
		return false
	}
	if m := numericSpelling.FindStringSubmatch(dest); m != nil {
		if sent == "numeric" {
			return true
		}
		n := numericSpelling.FindStringSubmatch(sent)
		if n == nil {
			return false
		}
		p, s, p2, s2 := atoi(m[1]), atoi(m[2]), atoi(n[1]), atoi(n[2])
		return s <= p && s2 <= p2 && s2 >= s && p2-s2 >= p-s
	}
	if m := datetimeSpelling.FindStringSubmatch(dest); m != nil {
		n := datetimeSpelling.FindStringSubmatch(sent)
		if n == nil || n[1] != m[1] || n[3] != m[3] {
			return false
		}
		precision := func(s string) int {
			if s == "" {
				return 6
			}
			return atoi(s)
		}
		return precision(n[2]) >= precision(m[2])
	}
	return false
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// widenColumns widens destination columns (relational.Syntax.WidenColumns)
// under the DDL lock.
func widenColumns(ctx context.Context, tx pgx.Tx, target string, types map[string]string, cols []contracts.Column) ([]string, error) {
	return colvSQL{}.syntax().WidenColumns(ctx, txExec(tx), txLockDDL(tx), target, types, cols)
}

// txExec runs statements in tx.
func txExec(tx pgx.Tx) relational.Exec {
	return func(ctx context.Context, q string) error {
		_, err := tx.Exec(ctx, q)
		return err
	}
}

// txLockDDL takes the DDL lock (ddlLockKey) for the rest of tx.
func txLockDDL(tx pgx.Tx) func(context.Context) error {
	return func(ctx context.Context) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", ddlLockKey); err != nil {
			return fmt.Errorf("lock for ddl: %w", err)
		}
		return nil
	}
}

// parseMark reads a column's comment as a colmark (nil: no comment).
func parseMark(comment *string) (attnum int, ok bool) {
	if comment == nil {
		return 0, false
	}
	return colmark.Parse(*comment)
}

// columnComments returns the comment of every column of target (nil: none).
func columnComments(ctx context.Context, tx pgx.Tx, target string) (map[string]*string, error) {
	return attributes[*string](ctx, tx, target, "col_description(a.attrelid, a.attnum)", "column comments")
}

// ownsTable reports whether the sink's role owns target (may alter it).
func ownsTable(ctx context.Context, tx pgx.Tx, target string) (bool, error) {
	var owner bool
	if err := tx.QueryRow(ctx, `SELECT coalesce((SELECT pg_has_role(relowner, 'USAGE') FROM pg_class WHERE oid = to_regclass($1)), false)`,
		target).Scan(&owner); err != nil {
		return false, fmt.Errorf("read owner of %s: %w", target, err)
	}
	return owner, nil
}

// markSourceColumns returns the columns of target that carry a colmark,
// first marking the non-key columns of cols (the batch's current source
// columns) that exist at the destination and carry no comment at all: the
// columns of a table just created or added to, and, once, the source
// columns of a table created before the driver marked columns. A mark
// whose attnum is missing or differs from the one the source now sends is
// rewritten. A column the user commented is left as it is (and so is never
// treated as dropped or renamed). Key columns are never marked: a dropped
// key column changes the table's key, which no policy handles. Runs under
// the DDL lock.
func markSourceColumns(ctx context.Context, tx pgx.Tx, target string, cols []contracts.Column) (map[string]bool, error) {
	// COMMENT needs the table's owner: on a table someone else owns
	// (created by hand, written with INSERT/UPDATE grants only), nothing
	// is marked, so nothing is treated as dropped.
	owner, err := ownsTable(ctx, tx, target)
	if err != nil {
		return nil, err
	}
	comments, err := columnComments(ctx, tx, target)
	if err != nil {
		return nil, err
	}
	marked := map[string]bool{}
	for name, c := range comments {
		if _, ok := parseMark(c); ok {
			marked[name] = true
		}
	}
	for _, c := range cols {
		comment, ok := comments[c.Name]
		if !ok || c.Key || !owner {
			continue
		}
		if attnum, isMark := parseMark(comment); comment != nil && (!isMark || c.Attnum == 0 || attnum == c.Attnum) {
			continue
		}
		if _, err := tx.Exec(ctx, "COMMENT ON COLUMN "+target+"."+ident(c.Name)+" IS "+quoteLiteral(colmark.For(c.Attnum))); err != nil {
			return nil, fmt.Errorf("mark column %q of %s as a source column: %w", c.Name, target, err)
		}
		marked[c.Name] = true
	}
	return marked, nil
}

// renameColumns renames the destination columns whose source column was
// renamed (relational.Syntax.RenameColumns), under the DDL lock. A column
// without a comment has none to match.
func renameColumns(ctx context.Context, tx pgx.Tx, target string, types map[string]string, cols []contracts.Column) ([]string, error) {
	comments := func(ctx context.Context) (map[string]string, error) {
		comments, err := columnComments(ctx, tx, target)
		if err != nil {
			return nil, err
		}
		plain := make(map[string]string, len(comments))
		for name, c := range comments {
			if c != nil {
				plain[name] = *c
			}
		}
		return plain, nil
	}
	return colvSQL{}.syntax().RenameColumns(ctx, txExec(tx), comments, target, types, cols)
}

// dropColumns applies the "drop" policy (relational.Syntax.DropColumns)
// under the DDL lock.
func dropColumns(ctx context.Context, tx pgx.Tx, target string, names []string) ([]string, error) {
	return colvSQL{}.syntax().DropColumns(ctx, txExec(tx), txLockDDL(tx), target, names)
}
