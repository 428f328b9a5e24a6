package postgres

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/guard"
)

// The column versions of the version guard (services/sink/drivers/
// internal/guard) in SQL: a version is the jsonb array [lsn, seq], which
// jsonb orders as the tuple (arrays of equal length compare element by
// element, numbers numerically), and Unknown is [0, -1], below every real
// version.

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
	row := "jsonb_build_array(" + a + "." + ident(lsnCol) + ", " + a + "." + ident(seqCol) + ")"
	if !x.has && a == "t" {
		return row
	}
	return "COALESCE(" + a + "." + ident(colvCol) + " -> " + literal(name) + ", " + row + ")"
}

// hasUnknown is true when the stored row aliased a has a column no change
// provided.
func (x colvSQL) hasUnknown(a string) string {
	if !x.has {
		return "false"
	}
	return "(" + a + "." + ident(colvCol) + " IS NOT NULL AND EXISTS (SELECT 1 FROM jsonb_each(" + a + "." + ident(colvCol) +
		") AS e WHERE e.value = " + unknownVersion + "))"
}

// sparseObject builds the sparse record from per-column version
// expressions: entries equal to rowVersion are left out, and an empty
// record is NULL. Columns of the stored record the expressions do not
// cover are kept. jsonb_build_object takes at most 100 arguments, so the
// pairs go in chunks.
func sparseObject(base string, data []stageColumn, version func(name string) string, rowVersion string) string {
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

// mergedColVersions is the record after the update merges staged row s
// into stored row t: a column takes the staged version when it took the
// staged value.
func (x colvSQL) mergedColVersions(data []stageColumn) string {
	rowVersion := "CASE WHEN (t." + ident(lsnCol) + ", t." + ident(seqCol) + ") < (s." + ident(lsnCol) + ", s." + ident(seqCol) +
		") THEN jsonb_build_array(s." + ident(lsnCol) + ", s." + ident(seqCol) + ") ELSE jsonb_build_array(t." + ident(lsnCol) + ", t." +
		ident(seqCol) + ") END"
	return sparseObject("t."+ident(colvCol), data, func(name string) string {
		return "CASE WHEN " + x.colVersion("t", name) + " < " + x.colVersion("s", name) + " THEN " + x.colVersion("s", name) + " ELSE " +
			x.colVersion("t", name) + " END"
	}, rowVersion)
}

// invalidateSet is the SET list that turns the columns of row t older
// than floor into unknown (NULL, version [0, -1]).
func (x colvSQL) invalidateSet(data []stageColumn, floor string) string {
	var set []string
	for _, c := range data {
		set = append(set, ident(c.Name)+" = CASE WHEN "+x.colVersion("t", c.Name)+" < "+floor+" THEN NULL ELSE t."+ident(c.Name)+" END")
	}
	rowVersion := "jsonb_build_array(t." + ident(lsnCol) + ", t." + ident(seqCol) + ")"
	set = append(set, ident(colvCol)+" = "+sparseObject("t."+ident(colvCol), data, func(name string) string {
		return "CASE WHEN " + x.colVersion("t", name) + " < " + floor + " THEN " + unknownVersion + " ELSE " + x.colVersion("t", name) + " END"
	}, rowVersion))
	return strings.Join(set, ", ")
}

// stagedColVersions writes the staged record of r: the version of each
// staged value that is not r's own (guard.ProvidedVersion), [0, -1] for
// columns r left unchanged; \N when there is none.
func stagedColVersions(buf *bytes.Buffer, cols []stageColumn, r *cdc.RowChange) {
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
		buf.WriteString(`\N`)
		return
	}
	copyEscaper.WriteString(buf, "{"+strings.Join(parts, ", ")+"}")
}

// versionJSON is v as the jsonb array the SQL compares; the LSN as the
// signed bigint the version columns hold.
func versionJSON(v contracts.Version) string {
	return "[" + strconv.FormatInt(int64(v.LSN), 10) + ", " + strconv.FormatInt(v.Seq, 10) + "]"
}
