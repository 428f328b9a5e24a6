package relational

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestTombstoneTableName pins the names existing destinations already
// hold: a change here orphans their tombstones.
func TestTombstoneTableName(t *testing.T) {
	long := strings.Repeat("é", 30) // 60 bytes: cut at a rune boundary
	tests := []struct {
		schema, table, want string
	}{
		{"sink", "items", "tomb_items_4570e5afa5ab"},
	}
	for _, tc := range tests {
		if got := TombstoneTableName(tc.schema, tc.table); got != tc.want {
			t.Errorf("TombstoneTableName(%q, %q) = %q, want %q", tc.schema, tc.table, got, tc.want)
		}
	}
	if TombstoneTableName("a", "items") == TombstoneTableName("b", "items") {
		t.Error("tables of two schemas share a tombstone table")
	}
	got := TombstoneTableName("s", long)
	if !utf8.ValidString(got) || len(got) > 63 {
		t.Errorf("name of a long table = %q (%d bytes), want valid UTF-8 within 63 bytes", got, len(got))
	}
}
