package snowflake

import (
	"testing"
)

const items = `SELECT ID, NAME, BIG FROM ROSETTA.PUBLIC.ITEMS ORDER BY ID`

func TestDriver(t *testing.T) {
	t.Parallel()
	it := ev{table: "items", cols: itemCols}

	t.Run("inserts updates deletes", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, nil)
		e.mustApply(it.ins(10, 1, "a"), it.ins(10, 2, "b"), it.ins(10, 3, "c"))
		e.expect(items, "1|a|<null>", "2|b|<null>", "3|c|<null>")
		e.mustApply(it.upd(20, 2, "b2"), it.del(21, 3), it.ins(22, 4, "d"))
		e.expect(items, "1|a|<null>", "2|b2|<null>", "4|d|<null>")
		e.expect(`SELECT ID, _ROSETTA_LSN, _ROSETTA_SEQ FROM ITEMS ORDER BY ID`, "1|10|1", "2|20|1", "4|22|1")
	})
}
