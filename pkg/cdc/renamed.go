package cdc

import (
	"slices"

	"github.com/rosettacdc/rosetta/contracts"
)

// Renamed returns the columns of b.Dropped that the newest change lists
// under another name, old name to new: the dropped column and a column of
// the newest list carry the same source attnum (contracts.Column.Attnum),
// which PostgreSQL keeps across RENAME COLUMN and never reuses within a
// table. Columns without an attnum are never paired.
func (b TableBatch) Renamed() map[string]string {
	var renamed map[string]string
	for _, d := range b.Dropped {
		i := slices.IndexFunc(b.Columns, func(c contracts.Column) bool { return c.Name == d })
		if i < 0 || b.Columns[i].Attnum == 0 {
			continue
		}
		for _, c := range b.Columns {
			if c.Attnum == b.Columns[i].Attnum && c.Name != d && !slices.Contains(b.Dropped, c.Name) {
				if renamed == nil {
					renamed = map[string]string{}
				}
				renamed[d] = c.Name
				break
			}
		}
	}
	return renamed
}

// FollowRenames returns b with the values rows of changes older than a
// rename hold under a column's old name (Renamed) moved to its new name,
// where the row has no value for the new name (a newer change's value
// wins), and an unchanged old name listed as the new one: Without(Dropped)
// then drops only what the source really dropped. b itself is not
// modified.
func (b TableBatch) FollowRenames() TableBatch {
	renamed := b.Renamed()
	if len(renamed) == 0 {
		return b
	}
	out := b
	out.Rows = make([]RowChange, len(b.Rows))
	for i, r := range b.Rows {
		touched := false
		for old := range renamed {
			if _, ok := r.Values[old]; ok || slices.Contains(r.Unchanged, old) {
				touched = true
			}
		}
		if !touched {
			out.Rows[i] = r
			continue
		}
		values := make(map[string]Value, len(r.Values))
		for k, v := range r.Values {
			values[k] = v
		}
		unchanged := slices.Clone(r.Unchanged)
		for old, name := range renamed {
			v, ok := values[old]
			if !ok {
				continue
			}
			delete(values, old)
			if _, newer := values[name]; !newer && !slices.Contains(unchanged, name) {
				values[name] = v
				if cv, ok := r.ColVersions[old]; ok {
					colv := make(map[string]contracts.Version, len(r.ColVersions))
					for k, x := range r.ColVersions {
						colv[k] = x
					}
					delete(colv, old)
					colv[name] = cv
					r.ColVersions = colv
				}
			}
		}
		for j, n := range unchanged {
			if name, ok := renamed[n]; ok {
				if _, newer := values[name]; newer || slices.Contains(unchanged, name) {
					continue // Without drops the old name
				}
				unchanged[j] = name
			}
		}
		r.Values, r.Unchanged = values, unchanged
		out.Rows[i] = r
	}
	return out
}
