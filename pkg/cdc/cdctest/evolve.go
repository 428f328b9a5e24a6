package cdctest

import (
	"fmt"

	"github.com/rosettacdc/rosetta/contracts"
)

// DroppedB is the table of the drivers' dropped-column tests: t (id
// integer key, a text, b text), described before and after its column b
// is dropped at the source.
type DroppedB struct{ Before, After Events }

// NewDroppedB returns the fixture; attnums gives the columns their source
// numbers (1, 2, 3), as current capture sends them.
func NewDroppedB(attnums bool) DroppedB {
	v1 := RenameColumns(attnums, "a")
	return DroppedB{Before: Events{Table: "t", Columns: v1}, After: Events{Table: "t", Columns: v1[:2]}}
}

// InsBefore inserts a row written before the drop.
func (d DroppedB) InsBefore(lsn uint64, id int, a, b string) contracts.Change {
	return d.Before.Change(contracts.OpCreate, lsn, 1, fmt.Sprintf(`{"id":%d}`, id), "", fmt.Sprintf(`{"id":%d,"a":%q,"b":%q}`, id, a, b))
}

// UpdBefore updates a row before the drop.
func (d DroppedB) UpdBefore(lsn uint64, id int, a, b string) contracts.Change {
	return d.Before.Change(contracts.OpUpdate, lsn, 1, fmt.Sprintf(`{"id":%d}`, id), "", fmt.Sprintf(`{"id":%d,"a":%q,"b":%q}`, id, a, b))
}

// WriteAfter inserts or updates (op) a row after the drop.
func (d DroppedB) WriteAfter(op contracts.Op, lsn uint64, id int, a string) contracts.Change {
	return d.After.Change(op, lsn, 1, fmt.Sprintf(`{"id":%d}`, id), "", fmt.Sprintf(`{"id":%d,"a":%q}`, id, a))
}

// RenameColumns describes t (id integer key, <second> text, b text): the
// drivers' rename tests rename the second column ("a" to "a2"). Without
// attnums the columns carry none, as from a producer older than them.
func RenameColumns(attnums bool, second string) []contracts.Column {
	c := []contracts.Column{{Name: "id", Type: "integer", BaseType: "integer", Key: true, Attnum: 1},
		{Name: second, Type: "text", BaseType: "text", Attnum: 2}, {Name: "b", Type: "text", BaseType: "text", Attnum: 3}}
	if !attnums {
		for i := range c {
			c[i].Attnum = 0
		}
	}
	return c
}
