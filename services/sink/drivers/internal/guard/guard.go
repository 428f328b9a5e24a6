// Package guard is the specification of the version guard every
// destination driver implements: what a destination holds for a key after
// any sequence of collapsed batches (pkg/cdc), whatever order, duplication
// or interleaving the changes of the key arrive in.
//
// It is pure and written for clarity, not speed: the drivers implement the
// same rule in SQL, and their tests apply random histories to a real
// destination and to Apply here and compare the rows (see docs/delivery.md,
// "Partial changes in any order").
//
// The rule, per key of a table:
//
//   - A row's existence follows the newest of its inserts/updates versus its
//     deletes and the table's truncates.
//   - Each column holds the value of the newest change that provided it: a
//     column carries its own version (Row.ColVersions), equal to the row's
//     version except after a partial change (an update that left TOASTed
//     columns unchanged), so a late older change fills exactly the columns
//     whose stored version is older than itself. A column a partial change
//     created without a value is Unknown (NULL) until a change providing it
//     arrives.
//   - Deletes and truncates are floors: a change older than the key's newest
//     delete (its tombstone) or the table's newest truncate fills nothing,
//     and a floor that arrives late turns columns older than itself back
//     into Unknown. A tombstone is kept while the key has no row or its row
//     has an Unknown column; after that no older change can fill anything.
//   - An update that moved a row from key K1 to K2 takes the columns it
//     left unchanged from the row stored at K1, those whose value is older
//     than the move; they then count as provided by the move.
package guard

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
)

// Unknown is the version of a column whose value no applied change
// provided: older than every real version, including the (0,0) of rows a
// destination table held before Rosetta adopted it.
var Unknown = contracts.Version{LSN: 0, Seq: -1}

// Row is one destination row: its non-key values and versions.
type Row struct {
	Key    []cdc.Value
	Values map[string]cdc.Value
	// Version is the newest version of an insert or update applied.
	Version contracts.Version
	// ColVersions holds, per non-key column, the version of the change its
	// value came from (Unknown when none did); every column has an entry.
	ColVersions map[string]contracts.Version
}

// HasUnknown reports whether a column of the row has no known value.
func (r *Row) HasUnknown() bool {
	for _, v := range r.ColVersions {
		if v == Unknown {
			return true
		}
	}
	return false
}

// Sparse reports whether a column's version differs from the row's (what
// a driver stores in its sparse column-version record).
func (r *Row) Sparse() bool {
	for _, v := range r.ColVersions {
		if v != r.Version {
			return true
		}
	}
	return false
}

// Table is what a destination holds for one table.
type Table struct {
	// Columns are the non-key columns every row has.
	Columns  []string
	Rows     map[string]*Row
	Tombs    map[string]contracts.Version
	Truncate contracts.Version
}

// NewTable returns an empty table with the given non-key columns.
func NewTable(columns []string) *Table {
	return &Table{Columns: columns, Rows: map[string]*Row{}, Tombs: map[string]contracts.Version{}}
}

// KeyID identifies a key: each value length-prefixed, NULL distinct.
func KeyID(key []cdc.Value) string {
	var b strings.Builder
	for _, v := range key {
		if v.Null {
			b.WriteString("N;")
			continue
		}
		b.WriteString(strconv.Itoa(len(v.Text)))
		b.WriteByte(':')
		b.WriteString(v.Text)
		b.WriteByte(';')
	}
	return b.String()
}

// ProvidedVersion is the version of the value r provides for column c:
// Unknown for a column r left unchanged, the column's own version when it
// was carried from an older change of the batch, else r's version. It is
// what a driver stages for the column.
func ProvidedVersion(r *cdc.RowChange, c string) contracts.Version {
	if slices.Contains(r.Unchanged, c) {
		return Unknown
	}
	if v, ok := r.ColVersions[c]; ok {
		return v
	}
	return r.Version
}

func less(a, b contracts.Version) bool { return a.Less(b) }

// Apply applies one collapsed table batch, in the order of the drivers'
// statements: (1) fill moved rows from their old key, (2) truncate,
// (3) delete floors, (4) update stored rows, (5) insert missing rows,
// (6) drop tombstones that no longer matter.
func (t *Table) Apply(b cdc.TableBatch) {
	// (1) Fill before anything is deleted: the old key's row as stored
	// before this batch.
	b = Fill(b, func(key []cdc.Value) *Stored {
		row := t.Rows[KeyID(key)]
		if row == nil {
			return nil
		}
		return &Stored{Values: row.Values, ColVersions: row.ColVersions}
	})
	rows := make([]cdc.RowChange, len(b.Rows))
	for i, r := range b.Rows {
		rows[i] = r
		rows[i].Values = maps.Clone(r.Values)
		rows[i].ColVersions = maps.Clone(r.ColVersions)
		rows[i].Unchanged = slices.Clone(r.Unchanged)
	}
	// (2) Truncate.
	if b.Truncate != nil {
		tv := *b.Truncate
		for id, row := range t.Rows {
			if less(row.Version, tv) {
				delete(t.Rows, id)
				continue
			}
			t.invalidate(row, tv)
		}
		for id, v := range t.Tombs {
			if less(v, tv) {
				delete(t.Tombs, id)
			}
		}
		if less(t.Truncate, tv) {
			t.Truncate = tv
		}
	}
	// (3) Floors: a delete's own version, or an upsert's Floor (a delete
	// of the key earlier in the batch).
	for i := range rows {
		r := &rows[i]
		var f contracts.Version
		switch {
		case r.Delete:
			f = r.Version
		case r.Floor != nil:
			f = *r.Floor
		default:
			continue
		}
		id := KeyID(r.Key)
		row := t.Rows[id]
		if row != nil && less(row.Version, f) {
			delete(t.Rows, id)
			row = nil
		}
		if row != nil {
			t.invalidate(row, f)
		}
		if (row == nil || row.HasUnknown()) && less(t.Truncate, f) {
			if old, ok := t.Tombs[id]; !ok || less(old, f) {
				t.Tombs[id] = f
			}
		}
	}
	// (4) Update stored rows, (5) insert missing ones.
	for i := range rows {
		r := &rows[i]
		if r.Delete {
			continue
		}
		id := KeyID(r.Key)
		row := t.Rows[id]
		tomb, hasTomb := t.Tombs[id]
		if row == nil {
			if (hasTomb && !less(tomb, r.Version)) || !less(t.Truncate, r.Version) {
				continue
			}
			row = &Row{Key: r.Key, Values: map[string]cdc.Value{}, Version: r.Version, ColVersions: map[string]contracts.Version{}}
			for _, c := range t.Columns {
				row.ColVersions[c] = ProvidedVersion(r, c)
				row.Values[c] = valueOf(r, c)
			}
			t.Rows[id] = row
			continue
		}
		fast := len(r.Unchanged) == 0 && len(r.ColVersions) == 0 && less(row.Version, r.Version)
		late := row.Sparse() && !less(row.Version, r.Version) && less(t.Truncate, r.Version) && !(hasTomb && less(r.Version, tomb))
		if !less(row.Version, r.Version) && !late {
			continue
		}
		for _, c := range t.Columns {
			pv := ProvidedVersion(r, c)
			if fast || less(row.ColVersions[c], pv) {
				row.Values[c] = valueOf(r, c)
				row.ColVersions[c] = pv
			}
		}
		if less(row.Version, r.Version) {
			row.Version = r.Version
		}
	}
	// (6) A tombstone older than an upsert of its key no longer matters
	// once the row exists with every column known.
	for i := range rows {
		r := &rows[i]
		if r.Delete {
			continue
		}
		id := KeyID(r.Key)
		if tomb, ok := t.Tombs[id]; ok && less(tomb, r.Version) {
			if row := t.Rows[id]; row != nil && !row.HasUnknown() {
				delete(t.Tombs, id)
			}
		}
	}
}

// invalidate turns the columns of row older than floor f into Unknown: a
// delete or truncate arrived after a change from before it filled them.
func (t *Table) invalidate(row *Row, f contracts.Version) {
	for c, v := range row.ColVersions {
		if v != Unknown && less(v, f) {
			row.ColVersions[c] = Unknown
			row.Values[c] = cdc.Value{Null: true}
		}
	}
}

func valueOf(r *cdc.RowChange, c string) cdc.Value {
	if slices.Contains(r.Unchanged, c) {
		return cdc.Value{Null: true}
	}
	if v, ok := r.Values[c]; ok {
		return v
	}
	return cdc.Value{Null: true}
}

// ToComplete returns the keys, in text form, that a driver reports after
// applying b (sinkrunner.IncompleteReporter) for the sink runner to have
// re-read from the source: the rows b's partial upserts left with an
// unknown column, and the rows b moved with columns left unchanged
// (MovedKeys). Call it right after t.Apply(b).
func (t *Table) ToComplete(b cdc.TableBatch) [][]string {
	keys := MovedKeys(b)
	seen := map[string]bool{}
	for _, k := range keys {
		seen[strings.Join(k, "\x00")] = true
	}
	for _, r := range b.Rows {
		if r.Delete || (len(r.Unchanged) == 0 && len(r.ColVersions) == 0) {
			continue
		}
		row := t.Rows[KeyID(r.Key)]
		if row == nil || !row.HasUnknown() {
			continue
		}
		key := make([]string, len(r.Key))
		for i, v := range r.Key {
			key[i] = v.Text
		}
		if id := strings.Join(key, "\x00"); !seen[id] {
			seen[id] = true
			keys = append(keys, key)
		}
	}
	return keys
}
