package colmark

import (
	"fmt"
	"testing"

	"github.com/rosettacdc/rosetta/contracts"
)

func TestParse(t *testing.T) {
	tests := []struct {
		comment string
		attnum  int
		ok      bool
	}{
		{For(0), 0, true},
		{For(7), 7, true},
		{Prefix + " attnum=x", 0, false},
		{Prefix + " attnum=-2", 0, false},
		{"a note of the user", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		attnum, ok := Parse(tt.comment)
		if attnum != tt.attnum || ok != tt.ok {
			t.Errorf("Parse(%q) = %d, %v; want %d, %v", tt.comment, attnum, ok, tt.attnum, tt.ok)
		}
	}
}

func TestRenames(t *testing.T) {
	typeOf := func(c contracts.Column) string { return c.BaseType }
	col := func(name string, attnum int) contracts.Column {
		return contracts.Column{Name: name, BaseType: "text", Attnum: attnum}
	}
	tests := []struct {
		name     string
		comments map[string]string
		types    map[string]string
		cols     []contracts.Column
		want     string
	}{
		{"renamed", map[string]string{"a": For(2)}, map[string]string{"a": "text"},
			[]contracts.Column{col("b", 2)}, "[{a b}]"},
		{"old name still listed", map[string]string{"a": For(2)}, map[string]string{"a": "text"},
			[]contracts.Column{col("a", 2), col("b", 3)}, "[]"},
		{"type changed too", map[string]string{"a": For(2)}, map[string]string{"a": "integer"},
			[]contracts.Column{col("b", 2)}, "[]"},
		{"mark without attnum", map[string]string{"a": For(0)}, map[string]string{"a": "text"},
			[]contracts.Column{col("b", 2)}, "[]"},
		{"user column", map[string]string{"a": "mine"}, map[string]string{"a": "text"},
			[]contracts.Column{col("b", 2)}, "[]"},
		{"two marks with one attnum", map[string]string{"a": For(2), "c": For(2)}, map[string]string{"a": "text", "c": "text"},
			[]contracts.Column{col("b", 2)}, "[]"},
		{"key column", map[string]string{"a": For(2)}, map[string]string{"a": "text"},
			[]contracts.Column{{Name: "b", BaseType: "text", Attnum: 2, Key: true}}, "[]"},
		{"new column exists already", map[string]string{"a": For(2)}, map[string]string{"a": "text", "b": "text"},
			[]contracts.Column{col("b", 2)}, "[]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Renames(tt.comments, tt.types, tt.cols, typeOf)
			if s := fmt.Sprint(got); s != tt.want && !(tt.want == "[]" && len(got) == 0) {
				t.Fatalf("Renames = %s, want %s", s, tt.want)
			}
		})
	}
}

func TestDropped(t *testing.T) {
	marked := map[string]bool{"c": true, "a": true, "b": true}
	got := Dropped(marked, []contracts.Column{{Name: "b"}, {Name: "x"}})
	if fmt.Sprint(got) != "[a c]" {
		t.Fatalf("Dropped = %v, want [a c]", got)
	}
}
