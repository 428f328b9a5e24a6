package desttype

import (
	"testing"
	"time"
)

func TestNames(t *testing.T) {
	for _, c := range []struct {
		types Types
		want  string
	}{
		{nil, ""},
		{Types{{Name: "postgres"}}, "postgres"},
		{Types{{Name: "postgres"}, {Name: "duckdb"}}, "postgres or duckdb"},
		{Types{{Name: "postgres"}, {Name: "snowflake"}, {Name: "duckdb"}}, "postgres, snowflake or duckdb"},
	} {
		if got := c.types.Names(); got != c.want {
			t.Errorf("Names() = %q, want %q", got, c.want)
		}
	}
}

func TestFields(t *testing.T) {
	types := Types{{Name: "a", Fields: []Field{{Name: "x"}}}, {Name: "b"}}
	if f := types.Fields("a"); len(f) != 1 || f[0].Name != "x" {
		t.Errorf("Fields(a) = %v", f)
	}
	if f := types.Fields("c"); f != nil {
		t.Errorf("Fields(c) = %v, want nil", f)
	}
}

func TestSeconds(t *testing.T) {
	for d, want := range map[time.Duration]string{time.Second: "1s", time.Minute: "60s", 1500 * time.Millisecond: "1.5s"} {
		if got := Seconds(d); got != want {
			t.Errorf("Seconds(%v) = %q, want %q", d, got, want)
		}
	}
}
