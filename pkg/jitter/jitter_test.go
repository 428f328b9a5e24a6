package jitter

import (
	"testing"
	"time"
)

func TestSpread(t *testing.T) {
	tests := []struct {
		name string
		d    time.Duration
	}{
		{"zero", 0},
		{"one nanosecond", 1},
		{"500ms", 500 * time.Millisecond},
		{"30s", 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := map[time.Duration]bool{}
			for range 1000 {
				got := Spread(tt.d)
				if got < tt.d/2 || got > tt.d {
					t.Fatalf("Spread(%s) = %s, want within [%s, %s]", tt.d, got, tt.d/2, tt.d)
				}
				seen[got] = true
			}
			if tt.d >= time.Millisecond && len(seen) < 100 {
				t.Fatalf("Spread(%s) gave %d distinct waits in 1000 draws: not spread", tt.d, len(seen))
			}
		})
	}
}
