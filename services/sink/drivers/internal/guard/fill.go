package guard

import (
	"maps"
	"slices"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
)

// Stored is a destination row as a driver reads it back for Fill: the
// values of the columns asked for and each one's version.
type Stored struct {
	Values map[string]cdc.Value
	// ColVersions has an entry per column asked for: the row's sparse
	// record where it has one, else the row's version.
	ColVersions map[string]contracts.Version
}

// FallbackKeys returns the distinct old keys whose stored rows Fill needs
// for b (the rows a key change left columns unchanged from), and the
// columns to read. None for a batch without key changes.
func FallbackKeys(b cdc.TableBatch) (keys [][]cdc.Value, columns []string) {
	seen := map[string]bool{}
	cols := map[string]bool{}
	for _, r := range b.Rows {
		if r.Delete {
			continue
		}
		for c, m := range r.Moved {
			cols[c] = true
			if id := KeyID(m.From); !seen[id] {
				seen[id] = true
				keys = append(keys, m.From)
			}
		}
	}
	columns = slices.Sorted(maps.Keys(cols))
	return keys, columns
}

// Fill resolves the columns key changes left unchanged: each takes the
// value stored at its old key when that value is older than the move and
// newer than the one the batch carried (a stale redelivery can be the
// batch's), and counts as provided by the move. A column neither holds
// stays Unchanged: the destination stores it as unknown. stored returns
// the row at a key as it was before the batch, or nil. b is not modified;
// rows that change are copied.
func Fill(b cdc.TableBatch, stored func(key []cdc.Value) *Stored) cdc.TableBatch {
	sources := FillSources(b, func(key []cdc.Value) map[string]contracts.Version {
		if st := stored(key); st != nil {
			return st.ColVersions
		}
		return nil
	})
	return Filled(b, sources, func(_ int, col string, from []cdc.Value) cdc.Value {
		return stored(from).Values[col]
	})
}

// FillSources is Fill's decision alone, for a driver that copies the
// values itself: per row of b, the columns to take from the row stored at
// an old key, and that key. versions returns the column versions stored
// at a key (nil when it has no row). Nil when no column is taken.
func FillSources(b cdc.TableBatch, versions func(key []cdc.Value) map[string]contracts.Version) []map[string][]cdc.Value {
	var out []map[string][]cdc.Value
	for i, r := range b.Rows {
		if r.Delete || len(r.Moved) == 0 {
			continue
		}
		for _, c := range slices.Sorted(maps.Keys(r.Moved)) {
			m := r.Moved[c]
			vs := versions(m.From)
			bv, ok := vs[c]
			// The old key's row may be newer than the move (the key
			// was used again since): its columns from before the move
			// still count, as the move's delete is not applied yet.
			if !ok || bv == Unknown || !bv.Less(m.Move) {
				continue
			}
			if !slices.Contains(r.Unchanged, c) && !m.Version.Less(bv) {
				continue
			}
			if out == nil {
				out = make([]map[string][]cdc.Value, len(b.Rows))
			}
			if out[i] == nil {
				out[i] = map[string][]cdc.Value{}
			}
			out[i][c] = m.From
		}
	}
	return out
}

// Filled returns b with the columns sources names taken: value gives the
// value of row i's column col stored at key from (a driver that copies
// the values in SQL returns a placeholder). b is not modified.
func Filled(b cdc.TableBatch, sources []map[string][]cdc.Value, value func(i int, col string, from []cdc.Value) cdc.Value) cdc.TableBatch {
	if sources == nil {
		return b
	}
	out := b
	out.Rows = slices.Clone(b.Rows)
	for i, cols := range sources {
		if len(cols) == 0 {
			continue
		}
		r := &out.Rows[i]
		r.Values, r.Unchanged = maps.Clone(r.Values), slices.Clone(r.Unchanged)
		if r.Values == nil {
			r.Values = map[string]cdc.Value{}
		}
		for c, from := range cols {
			r.Values[c] = value(i, c, from)
			r.Unchanged = slices.DeleteFunc(r.Unchanged, func(u string) bool { return u == c })
		}
	}
	return out
}

// MovedKeys returns the keys, in PostgreSQL's text form, of the rows of b
// that a key change moved with columns left unchanged (RowChange.Moved):
// their values come from the row stored at the old key, or from the old
// key's state in the batch, which is only right if no older change of the
// old key arrives after the move. Nothing at the destination can tell, as
// versions have gaps, so a driver reports these keys to be re-read from the
// source (sinkrunner.IncompleteReporter): a completion backfill's row is
// newer than every change committed before it and makes the row exact in
// any arrival order. Keys holding NULL are left out (no backfill filter
// selects them). Nil when b moved no row.
func MovedKeys(b cdc.TableBatch) [][]string {
	var keys [][]string
rows:
	for _, r := range b.Rows {
		if r.Delete || len(r.Moved) == 0 {
			continue
		}
		key := make([]string, len(r.Key))
		for i, v := range r.Key {
			if v.Null {
				continue rows
			}
			key[i] = v.Text
		}
		keys = append(keys, key)
	}
	return keys
}

// ReportMoved appends to found the keys of b's moved rows (MovedKeys), as
// a driver reports them for completion.
func ReportMoved(found []sinkrunner.IncompleteRows, b cdc.TableBatch) []sinkrunner.IncompleteRows {
	keys := MovedKeys(b)
	if len(keys) == 0 {
		return found
	}
	return append(found, sinkrunner.IncompleteRows{Table: b.Table.String(), KeyColumns: b.KeyColumns(), Keys: keys})
}
