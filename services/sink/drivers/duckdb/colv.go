package duckdb

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/guard"
)

// The column versions of the version guard (services/sink/drivers/
// internal/guard) in SQL: a version is the list [lsn, seq], which DuckDB
// orders as the tuple, and Unknown is [0, -1], below every real version.

const (
	colvType       = "MAP(VARCHAR, BIGINT[])"
	unknownVersion = "CAST([0, -1] AS BIGINT[])"
)

// literal quotes a column name as a DuckDB string literal.
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// colVersion is the version of column name in the row aliased a: its
// entry in the sparse record, else the row's version.
func colVersion(a, name string) string {
	return "COALESCE(" + a + "." + ident(colvCol) + "[" + literal(name) + "], [" + a + "." + ident(lsnCol) + ", " + a + "." + ident(seqCol) + "])"
}

// hasUnknown is true when the row aliased a has a column no change
// provided.
func hasUnknown(a string) string {
	return "(" + a + "." + ident(colvCol) + " IS NOT NULL AND list_contains(map_values(" + a + "." + ident(colvCol) + "), " + unknownVersion + "))"
}

// sparseMap builds the sparse record from per-column version expressions:
// entries equal to rowVersion are left out, entries of the stored record
// for columns not in data are kept, and an empty record is NULL.
func sparseMap(base string, data []stageColumn, version func(name string) string, rowVersion string) string {
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

// mergedColVersions is the record after the update merges staged row s
// into stored row t: a column takes the staged version when it took the
// staged value.
func mergedColVersions(data []stageColumn) string {
	rowVersion := "CASE WHEN (t." + ident(lsnCol) + ", t." + ident(seqCol) + ") < (s." + ident(lsnCol) + ", s." + ident(seqCol) +
		") THEN [s." + ident(lsnCol) + ", s." + ident(seqCol) + "] ELSE [t." + ident(lsnCol) + ", t." + ident(seqCol) + "] END"
	return sparseMap("t."+ident(colvCol), data, func(name string) string {
		return "CASE WHEN " + colVersion("t", name) + " < " + colVersion("s", name) + " THEN " + colVersion("s", name) + " ELSE " +
			colVersion("t", name) + " END"
	}, rowVersion)
}

// invalidateSet is the SET list that turns the columns of row t older
// than floor into unknown (NULL, version [0, -1]).
func invalidateSet(data []stageColumn, floor string) string {
	var set []string
	for _, c := range data {
		set = append(set, ident(c.Name)+" = CASE WHEN "+colVersion("t", c.Name)+" < "+floor+" THEN NULL ELSE t."+ident(c.Name)+" END")
	}
	rowVersion := "[t." + ident(lsnCol) + ", t." + ident(seqCol) + "]"
	set = append(set, ident(colvCol)+" = "+sparseMap("t."+ident(colvCol), data, func(name string) string {
		return "CASE WHEN " + colVersion("t", name) + " < " + floor + " THEN " + unknownVersion + " ELSE " + colVersion("t", name) + " END"
	}, rowVersion))
	return strings.Join(set, ", ")
}

// stagedColVersions is the staged record of r as JSON text: the version
// of each staged value that is not r's own (guard.ProvidedVersion),
// [0, -1] for columns r left unchanged; nil when there is none.
func stagedColVersions(cols []stageColumn, r *cdc.RowChange) any {
	var parts []string
	for _, c := range cols {
		if c.Key {
			continue
		}
		v := guard.ProvidedVersion(r, c.Name)
		if v == r.Version {
			continue
		}
		name, _ := json.Marshal(c.Name)
		parts = append(parts, string(name)+": "+versionJSON(v))
	}
	if len(parts) == 0 {
		return nil
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// versionJSON is v as the list the SQL compares; the LSN as the signed
// BIGINT the version columns hold.
func versionJSON(v contracts.Version) string {
	return "[" + strconv.FormatInt(int64(v.LSN), 10) + ", " + strconv.FormatInt(v.Seq, 10) + "]"
}
