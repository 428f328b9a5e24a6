package relational

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/guard"
)

// The column versions of the version guard (package guard) in SQL: a
// version is the pair [lsn, seq], which both destinations order as the
// tuple, and Unknown is [0, -1], below every real version. The Syntax
// spells the pair and the record.

// rowVersion is the row version of the row aliased a as a Pair.
func (x Syntax) rowVersion(a string) string {
	return x.Pair(a+"."+x.Ident(LSNCol), a+"."+x.Ident(SeqCol))
}

// MergedColVersions is the record after the update merges staged row s
// into stored row t: a column takes the staged version when it took the
// staged value.
func (x Syntax) MergedColVersions(data []Column) string {
	rowVersion := "CASE WHEN " + x.version("t") + " < " + x.version("s") + " THEN " + x.rowVersion("s") + " ELSE " + x.rowVersion("t") + " END"
	return x.Sparse("t."+x.Ident(ColvCol), data, func(name string) string {
		return "CASE WHEN " + x.ColVersion("t", name) + " < " + x.ColVersion("s", name) + " THEN " + x.ColVersion("s", name) + " ELSE " +
			x.ColVersion("t", name) + " END"
	}, rowVersion)
}

// InvalidateSet is the SET list that turns the columns of row t older
// than floor into unknown (NULL, version Unknown).
func (x Syntax) InvalidateSet(data []Column, floor string) string {
	var set []string
	for _, c := range data {
		set = append(set, x.Ident(c.Name)+" = CASE WHEN "+x.ColVersion("t", c.Name)+" < "+floor+" THEN NULL ELSE t."+x.Ident(c.Name)+" END")
	}
	set = append(set, x.Ident(ColvCol)+" = "+x.Sparse("t."+x.Ident(ColvCol), data, func(name string) string {
		return "CASE WHEN " + x.ColVersion("t", name) + " < " + floor + " THEN " + x.Unknown + " ELSE " + x.ColVersion("t", name) + " END"
	}, x.rowVersion("t")))
	return strings.Join(set, ", ")
}

// StagedColVersions is the staged record of r as JSON text: the version
// of each staged value that is not r's own (guard.ProvidedVersion),
// [0, -1] for columns r left unchanged; "" when there is none. It runs
// per staged row: the common row (every column has its version) costs no
// allocation.
func StagedColVersions(cols []Column, r *cdc.RowChange) string {
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
		return ""
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// versionJSON is v as the pair the SQL compares; the LSN as the signed
// bigint the version columns hold.
func versionJSON(v contracts.Version) string {
	return "[" + strconv.FormatInt(int64(v.LSN), 10) + ", " + strconv.FormatInt(v.Seq, 10) + "]"
}

// ParseVersion reads a version pair's text, "[lsn, seq]", as a destination
// prints a stored column version.
func ParseVersion(s string) (contracts.Version, error) {
	var lsn, seq int64
	if _, err := fmt.Sscanf(s, "[%d, %d]", &lsn, &seq); err != nil {
		return contracts.Version{}, fmt.Errorf("parse %q: %w", s, err)
	}
	return contracts.Version{LSN: uint64(lsn), Seq: seq}, nil
}
