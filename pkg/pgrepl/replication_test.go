package pgrepl

import "testing"

func TestParseServerVersion(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int
	}{
		{"15.4", 150004},
		{"14.0", 140000},
		{"14beta1", 140000},
		{"13.12", 130012},
		{"16.1 (Debian 16.1-1.pgdg120+1)", 160001},
		{"9.6.24", 90624},
		{"", 0},
		{"x", 0},
	} {
		if got := parseServerVersion(tt.in); got != tt.want {
			t.Errorf("parseServerVersion(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}
