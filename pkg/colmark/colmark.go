// Package colmark holds the mark a sink driver puts, as a column comment,
// on the destination columns it created from source columns, and what the
// drivers decide from those marks: which columns were dropped at the
// source and which were renamed. A column without the mark (one a user
// added) is never dropped, renamed or written NULL by a driver.
package colmark

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/rosettacdc/rosetta/contracts"
)

// Prefix is the comment of a source column whose attnum is unknown (marks
// written before columns carried their attnum); For appends the attnum.
const Prefix = "rosetta: source column"

// For returns the mark of a source column with attnum (0: unknown).
func For(attnum int) string {
	if attnum <= 0 {
		return Prefix
	}
	return Prefix + " attnum=" + strconv.Itoa(attnum)
}

// Parse reports whether comment is a source mark, and the attnum it
// carries (0 when none).
func Parse(comment string) (attnum int, ok bool) {
	if comment == Prefix {
		return 0, true
	}
	digits, ok := strings.CutPrefix(comment, Prefix+" attnum=")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n <= 0 {
		return 0, false
	}
	return n, true
}

// Rename is one destination column to rename.
type Rename struct{ Old, New string }

// Renames returns the destination columns whose source column was renamed:
// for each column of cols (the newest change's list) the destination lacks,
// a destination column whose mark carries the same attnum, whose name cols
// no longer lists, and whose destination type is typeOf of the column.
// Two marked columns with one attnum are not a rename anyone can tell, so
// neither is renamed; key columns never are. comments maps destination
// column names to their comments, destTypes to their types.
func Renames(comments, destTypes map[string]string, cols []contracts.Column, typeOf func(contracts.Column) string) []Rename {
	listed := make(map[string]bool, len(cols))
	for _, c := range cols {
		listed[c.Name] = true
	}
	byAttnum := map[int]string{}
	dup := map[int]bool{}
	for name, comment := range comments {
		attnum, ok := Parse(comment)
		if !ok || attnum == 0 || listed[name] {
			continue
		}
		if _, seen := byAttnum[attnum]; seen {
			dup[attnum] = true
		}
		byAttnum[attnum] = name
	}
	var out []Rename
	for _, c := range cols {
		old, ok := byAttnum[c.Attnum]
		if _, have := destTypes[c.Name]; have || !ok || c.Key || dup[c.Attnum] || destTypes[old] != typeOf(c) {
			continue
		}
		out = append(out, Rename{Old: old, New: c.Name})
		delete(byAttnum, c.Attnum)
	}
	return out
}

// Dropped lists, sorted, the marked (source) columns of a destination
// table that cols, the newest change's list, lacks: columns dropped at the
// source (or renamed where Renames could not tell).
func Dropped(marked map[string]bool, cols []contracts.Column) []string {
	listed := make(map[string]bool, len(cols))
	for _, c := range cols {
		listed[c.Name] = true
	}
	var gone []string
	for name := range marked {
		if !listed[name] {
			gone = append(gone, name)
		}
	}
	slices.Sort(gone)
	return gone
}

// The values of a destination's dropped_columns setting: what happens to
// a marked column once the source dropped it.
const (
	DroppedKeep = "keep" // the default: keep it, write NULL from the drop on
	DroppedDrop = "drop" // drop it
)

// CheckDroppedPolicy reports a dropped_columns value that is neither.
func CheckDroppedPolicy(policy string) error {
	if policy != DroppedKeep && policy != DroppedDrop {
		return fmt.Errorf("dropped_columns %.40q is not one of keep, drop", policy)
	}
	return nil
}
