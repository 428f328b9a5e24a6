package verify

import (
	"context"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/rosettacdc/rosetta/pkg/snapshot"
)

// textual reports whether a key column of this type orders by collation
// (then PostgreSQL compares it with COLLATE "C", byte order, which is
// DuckDB's order too).
func textual(typ string) bool {
	t := strings.TrimPrefix(typ, "pg_catalog.")
	return t == "text" || t == "name" || strings.HasPrefix(t, "character") || t == "citext" || strings.HasSuffix(t, ".citext")
}

// pgKeyExpr is key column c as compared and ordered in PostgreSQL,
// qualified: an output column of the same name would win in ORDER BY.
func pgKeyExpr(c Col) string {
	n := "r." + pgIdent(c.Name)
	if textual(c.Type) {
		return n + ` COLLATE "C"`
	}
	return n
}

// rangeWhere builds the condition "key in r" over the key columns: expr(i)
// is key column i, val(i, bound) a bound's value as SQL.
func rangeWhere(nkey int, r Range, expr func(i int) string, val func(i int, v string) string) string {
	var conds []string
	lexi := func(bound []string, strict, inclusive string) string {
		var ors []string
		for i := 0; i < nkey; i++ {
			var ands []string
			for j := 0; j < i; j++ {
				ands = append(ands, expr(j)+" = "+val(j, bound[j]))
			}
			ands = append(ands, expr(i)+" "+strict+" "+val(i, bound[i]))
			ors = append(ors, "("+strings.Join(ands, " AND ")+")")
		}
		if inclusive != "" {
			var ands []string
			for j := 0; j < nkey; j++ {
				ands = append(ands, expr(j)+" = "+val(j, bound[j]))
			}
			ors = append(ors, "("+strings.Join(ands, " AND ")+")")
		}
		return "(" + strings.Join(ors, " OR ") + ")"
	}
	if r.Lo != nil {
		conds = append(conds, lexi(r.Lo, ">", ""))
	}
	if r.Hi != nil {
		conds = append(conds, lexi(r.Hi, "<", "="))
	}
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

// pgSelect is the query reading p's rows in r from schema.name: the key
// columns' text output, then every column's projection, in key order. The
// bound values are appended to args.
func pgSelect(p plan, schema, name string, r Range, args *[]any) string {
	exprs := make([]string, 0, p.nkey+len(p.cols))
	for i := 0; i < p.nkey; i++ {
		exprs = append(exprs, pgIdent(p.cols[i].Name)+"::text")
	}
	for _, c := range p.cols {
		exprs = append(exprs, pgProjection(c.Name, c.kind))
	}
	order := make([]string, p.nkey)
	for i := range order {
		order[i] = pgKeyExpr(p.cols[i])
	}
	where := rangeWhere(p.nkey, r, func(i int) string { return pgKeyExpr(p.cols[i]) }, func(i int, v string) string {
		*args = append(*args, v)
		return "$" + strconv.Itoa(len(*args)) + "::" + p.cols[i].Type
	})
	return "SELECT " + strings.Join(exprs, ", ") + " FROM " + snapshot.Quote(schema, name) + " AS r" + where + " ORDER BY " + strings.Join(order, ", ")
}

// pgScan reads rows of pgSelect: raw keys then projected values.
func pgScan(rows pgx.Rows, p plan, each func(raw []string, vals []*string) error) error {
	defer rows.Close()
	n := p.nkey + len(p.cols)
	for rows.Next() {
		cells := make([]*string, n)
		ptrs := make([]any, n)
		for i := range cells {
			ptrs[i] = &cells[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		raw := make([]string, p.nkey)
		for i := range raw {
			raw[i] = *cells[i]
		}
		if err := each(raw, cells[p.nkey:]); err != nil {
			return err
		}
	}
	return rows.Err()
}

// sourceChunks reads the whole source table once, in key order, and cuts
// it into ranges of chunkRows rows with their counts and checksums.
func sourceChunks(ctx context.Context, tx pgQuerier, t snapshot.Table, p plan, chunkRows int) ([]chunk, int64, error) {
	var args []any
	rows, err := tx.Query(ctx, pgSelect(p, t.Schema, t.Name, Range{}, &args), args...)
	if err != nil {
		return nil, 0, err
	}
	var chunks []chunk
	cur := chunk{}
	var total int64
	err = pgScan(rows, p, func(raw []string, vals []*string) error {
		r := p.canonRow(raw, vals)
		cur.count++
		cur.sum += r.hash()
		total++
		if cur.count == int64(chunkRows) {
			cur.r.Hi = raw
			chunks = append(chunks, cur)
			cur = chunk{r: Range{Lo: raw}}
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	// The last range is open above, so that destination rows beyond the
	// source's last key are counted.
	chunks = append(chunks, cur)
	return chunks, total, nil
}

// sourceRows reads the source rows of r (to narrow a differing range).
func sourceRows(ctx context.Context, tx pgQuerier, t snapshot.Table, p plan, r Range) ([]row, error) {
	var args []any
	rows, err := tx.Query(ctx, pgSelect(p, t.Schema, t.Name, r, &args), args...)
	if err != nil {
		return nil, err
	}
	var out []row
	err = pgScan(rows, p, func(raw []string, vals []*string) error {
		out = append(out, p.canonRow(raw, vals))
		return nil
	})
	return out, err
}
