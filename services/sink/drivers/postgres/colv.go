package postgres

import (
	"strings"

	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/relational"
)

// The column versions of the version guard (services/sink/drivers/
// internal/guard) in PostgreSQL's SQL (relational.Syntax): a version is
// the jsonb array [lsn, seq], which jsonb orders as the tuple (arrays of
// equal length compare element by element, numbers numerically), and
// Unknown is [0, -1], below every real version.

const unknownVersion = "'[0, -1]'::jsonb"

// literal quotes a column name as an SQL string literal.
func literal(s string) string { return quoteLiteral(s) }

// colvSQL writes the column-version expressions of one destination table.
// has is false for a table without the record column (one the sink's role
// does not own and cannot alter): its columns all have the row's version.
type colvSQL struct{ has bool }

// colVersion is the version of column name in the row aliased a: its
// entry in the sparse record, else the row's version.
func (x colvSQL) colVersion(a, name string) string {
	row := "jsonb_build_array(" + a + "." + ident(relational.LSNCol) + ", " + a + "." + ident(relational.SeqCol) + ")"
	if !x.has && a == "t" {
		return row
	}
	return "COALESCE(" + a + "." + ident(relational.ColvCol) + " -> " + literal(name) + ", " + row + ")"
}

// hasUnknown is true when the stored row aliased a has a column no change
// provided.
func (x colvSQL) hasUnknown(a string) string {
	if !x.has {
		return "false"
	}
	return "(" + a + "." + ident(relational.ColvCol) + " IS NOT NULL AND EXISTS (SELECT 1 FROM jsonb_each(" + a + "." + ident(relational.ColvCol) +
		") AS e WHERE e.value = " + unknownVersion + "))"
}

// sparseObject builds the sparse record from per-column version
// expressions (relational.Syntax.Sparse). Columns of the stored record the
// expressions do not cover are kept. jsonb_build_object takes at most 100
// arguments, so the pairs go in chunks.
func sparseObject(base string, data []relational.Column, version func(name string) string, rowVersion string) string {
	if len(data) == 0 {
		return base
	}
	var chunks, names []string
	for i := 0; i < len(data); i += 40 {
		var pairs []string
		for _, c := range data[i:min(i+40, len(data))] {
			pairs = append(pairs, literal(c.Name), "NULLIF("+version(c.Name)+", "+rowVersion+")")
		}
		chunks = append(chunks, "jsonb_build_object("+strings.Join(pairs, ", ")+")")
	}
	for _, c := range data {
		names = append(names, literal(c.Name))
	}
	return "NULLIF(jsonb_strip_nulls((COALESCE(" + base + ", '{}'::jsonb) - ARRAY[" + strings.Join(names, ", ") + "]::text[]) || " +
		strings.Join(chunks, " || ") + "), '{}'::jsonb)"
}
