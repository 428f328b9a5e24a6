package contracts

import "testing"

func TestParseConsumerName(t *testing.T) {
	for _, tt := range []struct {
		name   string
		p, d   int64
		wantOK bool
	}{
		{ConsumerName(5, 12), 5, 12, true},
		{"pipeline_1_dest_2", 1, 2, true},
		{"pipeline_01_dest_2", 0, 0, false},
		{"pipeline_1_dest_", 0, 0, false},
		{"tap_orders", 0, 0, false},
		{"pipeline_x_dest_2", 0, 0, false},
	} {
		p, d, ok := ParseConsumerName(tt.name)
		if ok != tt.wantOK || p != tt.p || d != tt.d {
			t.Errorf("ParseConsumerName(%q) = %d, %d, %v; want %d, %d, %v", tt.name, p, d, ok, tt.p, tt.d, tt.wantOK)
		}
	}
}
