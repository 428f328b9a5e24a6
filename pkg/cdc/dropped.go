package cdc

import (
	"slices"

	"github.com/rosettacdc/rosetta/contracts"
)

// Without returns b as if the columns named had never been part of it:
// they leave Columns, and every row's Values and Unchanged. A row's value
// for such a column is then NULL to a driver that still stages the column.
// Rows that hold none of them are shared with b, the others are copied: b
// itself is not modified (the runner may apply it again, or bisect it).
func (b TableBatch) Without(names []string) TableBatch {
	if len(names) == 0 {
		return b
	}
	drop := func(n string) bool { return slices.Contains(names, n) }
	out := b
	out.Columns = slices.DeleteFunc(slices.Clone(b.Columns), func(c contracts.Column) bool { return drop(c.Name) })
	out.Dropped = slices.DeleteFunc(slices.Clone(b.Dropped), drop)
	if len(out.Dropped) == 0 {
		out.Dropped = nil
	}
	out.Rows = nil
	for i, r := range b.Rows {
		touched := slices.ContainsFunc(r.Unchanged, drop)
		for _, n := range names {
			if _, ok := r.Values[n]; ok {
				touched = true
			}
		}
		if !touched {
			if out.Rows != nil {
				out.Rows = append(out.Rows, r)
			}
			continue
		}
		if out.Rows == nil {
			out.Rows = append(make([]RowChange, 0, len(b.Rows)), b.Rows[:i]...)
		}
		values := make(map[string]Value, len(r.Values))
		for k, v := range r.Values {
			if !drop(k) {
				values[k] = v
			}
		}
		r.Values = values
		r.Unchanged = slices.DeleteFunc(slices.Clone(r.Unchanged), drop)
		out.Rows = append(out.Rows, r)
	}
	if out.Rows == nil {
		out.Rows = b.Rows
	}
	return out
}
