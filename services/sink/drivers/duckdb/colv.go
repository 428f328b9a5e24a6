package duckdb

import (
	"strings"

	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/relational"
)

// The column versions of the version guard (services/sink/drivers/
// internal/guard) in DuckDB's SQL (relational.Syntax): a version is the
// list [lsn, seq], which DuckDB orders as the tuple, and Unknown is
// [0, -1], below every real version. The record, relational.ColvCol, is a
// MAP(VARCHAR, BIGINT[]).

const (
	colvType       = "MAP(VARCHAR, BIGINT[])"
	unknownVersion = "CAST([0, -1] AS BIGINT[])"
)

// literal quotes a column name as a DuckDB string literal.
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// colVersion is the version of column name in the row aliased a: its
// entry in the sparse record, else the row's version.
func colVersion(a, name string) string {
	return "COALESCE(" + a + "." + ident(relational.ColvCol) + "[" + literal(name) + "], [" + a + "." + ident(relational.LSNCol) + ", " + a + "." + ident(relational.SeqCol) + "])"
}

// hasUnknown is true when the row aliased a has a column no change
// provided.
func hasUnknown(a string) string {
	return "(" + a + "." + ident(relational.ColvCol) + " IS NOT NULL AND list_contains(map_values(" + a + "." + ident(relational.ColvCol) + "), " + unknownVersion + "))"
}

// sparseMap builds the sparse record from per-column version expressions
// (relational.Syntax.Sparse).
func sparseMap(base string, data []relational.Column, version func(name string) string, rowVersion string) string {
	if len(data) == 0 {
		return base
	}
	var entries, names []string
	for _, c := range data {
		entries = append(entries, "{'k': "+literal(c.Name)+", 'v': NULLIF("+version(c.Name)+", "+rowVersion+")}")
		names = append(names, literal(c.Name))
	}
	kept := "map_from_entries(list_filter(map_entries(COALESCE(" + base + ", CAST(MAP {} AS " + colvType + "))), e -> NOT list_contains([" +
		strings.Join(names, ", ") + "], e.key)))"
	m := "map_concat(" + kept + ", map_from_entries(list_filter([" + strings.Join(entries, ", ") + "], x -> x.v IS NOT NULL)))"
	return "CASE WHEN cardinality(" + m + ") = 0 THEN NULL ELSE " + m + " END"
}
