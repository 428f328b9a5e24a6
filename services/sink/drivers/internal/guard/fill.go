package guard

import (
	"maps"
	"slices"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
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
	out := b
	cloned := false
	for i, r := range b.Rows {
		if r.Delete || len(r.Moved) == 0 {
			continue
		}
		var values map[string]cdc.Value
		var unchanged []string
		for c, m := range r.Moved {
			src := stored(m.From)
			if src == nil {
				continue
			}
			bv, ok := src.ColVersions[c]
			if !ok || bv == Unknown || !bv.Less(m.Move) {
				continue
			}
			if !slices.Contains(r.Unchanged, c) && !m.Version.Less(bv) {
				continue
			}
			if values == nil {
				values, unchanged = maps.Clone(r.Values), slices.Clone(r.Unchanged)
				if values == nil {
					values = map[string]cdc.Value{}
				}
			}
			values[c] = src.Values[c]
			unchanged = slices.DeleteFunc(unchanged, func(u string) bool { return u == c })
		}
		if values == nil {
			continue
		}
		if !cloned {
			out.Rows, cloned = slices.Clone(b.Rows), true
		}
		out.Rows[i].Values, out.Rows[i].Unchanged = values, unchanged
	}
	return out
}
