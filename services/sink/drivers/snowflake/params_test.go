package snowflake

import (
	"strings"
	"testing"

	"github.com/rosettacdc/rosetta/contracts"
)

// TestSessionParametersPinned applies a batch as a user whose user-level
// parameters are hostile (hostileParams): every session the driver opened
// runs with the values it pins, not the user's.
func TestSessionParametersPinned(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.mustApply(ev{Table: "items", Columns: itemCols}.Ins(10, 1, "a"))
	sessions := e.srv.Parameters(testUser)
	if len(sessions) == 0 {
		t.Fatal("no session of the driver's user")
	}
	for i, got := range sessions {
		for _, p := range sessionParams {
			if !strings.EqualFold(got[p.name], p.value) {
				t.Errorf("session %d: %s = %q, want %q", i, p.name, got[p.name], p.value)
			}
		}
		// Independently of sessionParams: none of the user's hostile
		// values may survive.
		for name, hostile := range hostileParams {
			if strings.EqualFold(got[name], hostile) {
				t.Errorf("session %d: %s = %q, the user's value; the driver must pin it", i, name, got[name])
			}
		}
	}
}

// TestHostileParametersMixedCase writes a table and columns whose names
// need quotes, as a user with QUOTED_IDENTIFIERS_IGNORE_CASE = TRUE: they
// keep their case, and the driver finds the columns it created (without
// the pinned FALSE it would loop on "lacks columns after adding them").
func TestHostileParametersMixedCase(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	mixed := ev{Table: "OrderLines", Columns: []contracts.Column{
		{Name: "Id", Type: "integer", BaseType: "integer", Key: true},
		{Name: "Unit Price", Type: "numeric(10,2)", BaseType: "numeric"},
		{Name: "at", Type: "timestamp without time zone", BaseType: "timestamp without time zone"},
		{Name: "on", Type: "date", BaseType: "date"},
	}}
	row := `{"Id":1,"Unit Price":"9.50","at":"2024-03-04 05:06:07.123456","on":"2024-03-04"}`
	e.mustApply(mixed.Change(contracts.OpCreate, 10, 1, `{"Id":1}`, "", row))
	e.mustApply(mixed.Change(contracts.OpUpdate, 20, 1, `{"Id":1}`, "",
		`{"Id":1,"Unit Price":"10.00","at":"2024-03-04 05:06:07.123456","on":"2024-03-04"}`))
	e.expect(`SELECT "Id", "Unit Price", "AT" = CAST('2024-03-04 05:06:07.123456' AS TIMESTAMP_NTZ), `+
		`"ON" = CAST('2024-03-04' AS DATE) FROM ROSETTA.PUBLIC."OrderLines"`, "1|10.00|1|1")
}
