package postgres

import "testing"

func TestWidens(t *testing.T) {
	for _, c := range []struct {
		dest, sent string
		want       bool
	}{
		{"smallint", "integer", true},
		{"integer", "bigint", true},
		{"bigint", "integer", false},
		{"integer", "numeric", true},
		{"integer", "text", false},
		{"character varying(5)", "character varying(10)", true},
		{"character varying(10)", "character varying(5)", false},
		{"character varying(5)", "text", true},
		{"character varying(5)", "character varying", true},
		{"numeric(10,1)", "numeric(10,3)", false}, // 9 digits before the point become 7
		{"numeric(10,1)", "numeric(12,3)", true},
		{"numeric(10,1)", "numeric", true},
		{"numeric(10,3)", "numeric(10,1)", false},
		{"numeric", "numeric(10,1)", false},
		{"timestamp(3) without time zone", "timestamp without time zone", true},
		{"timestamp without time zone", "timestamp(3) without time zone", false},
		{"timestamp(0) with time zone", "timestamp(3) with time zone", true},
		{"timestamp(3) without time zone", "timestamp(6) with time zone", false},
		{"time(2) without time zone", "time without time zone", true},
		{"real", "double precision", false},
		{"text", "text", false},
	} {
		if got := widens(c.dest, c.sent); got != c.want {
			t.Errorf("widens(%q, %q) = %v, want %v", c.dest, c.sent, got, c.want)
		}
	}
}
