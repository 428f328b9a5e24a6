package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/relational"
)

// copyEscaper escapes a value for COPY's text format. Values arrive in
// PostgreSQL's text form, which COPY's text format parses with the column
// type's input function.
var copyEscaper = strings.NewReplacer(`\`, `\\`, "\t", `\t`, "\n", `\n`, "\r", `\r`)

func writeValue(buf *bytes.Buffer, v cdc.Value) {
	if v.Null {
		buf.WriteString(`\N`)
		return
	}
	copyEscaper.WriteString(buf, v.Text)
}

// encodeRows writes the staging rows of one table batch in COPY text format,
// in the column order of buildStatements: the data columns (cols), then
// del, lsn, seq, the staged column versions and the floor.
func encodeRows(buf *bytes.Buffer, cols []stageColumn, rows []cdc.RowChange) {
	staged := relational.Columns(cols, stageColumn.column)
	keyIdx := make(map[string]int, len(cols))
	for _, c := range cols {
		if c.Key {
			keyIdx[c.Name] = len(keyIdx)
		}
	}
	for i := range rows {
		r := &rows[i]
		for i, c := range cols {
			if i > 0 {
				buf.WriteByte('\t')
			}
			if k, ok := keyIdx[c.Name]; ok && k < len(r.Key) {
				// The key decides which row this is, for deletes too.
				writeValue(buf, r.Key[k])
				continue
			}
			v, ok := r.Values[c.Name]
			if r.Delete || !ok || slices.Contains(r.Unchanged, c.Name) {
				v = cdc.Value{Null: true}
			}
			writeValue(buf, v)
		}
		if r.Delete {
			buf.WriteString("\tt\t")
		} else {
			buf.WriteString("\tf\t")
		}
		buf.WriteString(strconv.FormatInt(int64(r.Version.LSN), 10))
		buf.WriteByte('\t')
		buf.WriteString(strconv.FormatInt(r.Version.Seq, 10))
		buf.WriteByte('\t')
		colv := ""
		if !r.Delete {
			colv = relational.StagedColVersions(staged, r)
		}
		if colv == "" {
			buf.WriteString(`\N`)
		} else {
			copyEscaper.WriteString(buf, colv)
		}
		// The floor: a delete's own version, or the delete the key had
		// earlier in the batch.
		switch {
		case r.Delete:
			buf.WriteString("\t" + strconv.FormatInt(int64(r.Version.LSN), 10) + "\t" + strconv.FormatInt(r.Version.Seq, 10))
		case r.Floor != nil:
			buf.WriteString("\t" + strconv.FormatInt(int64(r.Floor.LSN), 10) + "\t" + strconv.FormatInt(r.Floor.Seq, 10))
		default:
			buf.WriteString("\t\\N\t\\N")
		}
		// The sent text of checked columns, again, for the exactness
		// check (buildStatements).
		for _, c := range cols {
			if c.Check == "" {
				continue
			}
			buf.WriteByte('\t')
			v, ok := r.Values[c.Name]
			if k, isKey := keyIdx[c.Name]; isKey && k < len(r.Key) {
				v, ok = r.Key[k], true
			}
			if r.Delete || !ok || slices.Contains(r.Unchanged, c.Name) {
				v = cdc.Value{Null: true}
			}
			writeValue(buf, v)
		}
		buf.WriteByte('\n')
	}
}

// copyWhere is the part of a COPY error that names the staging column and
// the value (", at COPY …, line 3, column price: \"1.005\""); PgError's
// message alone does not say which column refused what.
func copyWhere(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Where != "" {
		return ", at " + pgErr.Where
	}
	return ""
}

// checkExact fails permanently when a staged value is not exactly the
// value sent: a destination column whose type differs from the sent type
// (see needsCheck) may round it (numeric scale, timestamp precision, real)
// or trim it (trailing spaces beyond varchar(n)) without an error.
func checkExact(ctx context.Context, tx pgx.Tx, b cdc.TableBatch, plan *stagePlan) error {
	for _, c := range plan.sql.checks {
		var sent, stored *string
		var key []*string
		err := tx.QueryRow(ctx, c.sql).Scan(&sent, &stored, &key)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return fmt.Errorf("check that column %q (%s) holds values sent as %s exactly: %w", c.col.Name, c.col.Type, c.col.Check, err)
		}
		var keyText []string
		for i, k := range b.KeyColumns() {
			if i < len(key) && key[i] != nil {
				keyText = append(keyText, fmt.Sprintf("%s=%q", k, *key[i]))
			}
		}
		show := func(v *string) string {
			if v == nil {
				return "NULL"
			}
			if len(*v) > 80 {
				return strconv.Quote((*v)[:80] + "…")
			}
			return strconv.Quote(*v)
		}
		return sinkrunner.Permanent(fmt.Errorf("%s.%s column %q (%s), row with key %s: value %s (sent as %s) would be stored as %s: the destination type cannot hold it exactly",
			b.Table.Schema, b.Table.Name, c.col.Name, c.col.Type, strings.Join(keyText, ", "), show(sent), c.col.Check, show(stored)))
	}
	return nil
}
