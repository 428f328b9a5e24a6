package contracts

import "testing"

func TestDestinationsHeader(t *testing.T) {
	if got := FormatDestinations([]int64{3, 7}); got != "3,7" {
		t.Fatalf("FormatDestinations = %q, want 3,7", got)
	}
	for _, tc := range []struct {
		header string
		dest   int64
		want   bool
	}{
		{"", 5, true},        // no header: every destination
		{"3,7", 3, true},     // listed
		{"3,7", 7, true},     // listed
		{"3,7", 5, false},    // not listed: skipped
		{"3", 33, false},     // no prefix match
		{" 3 , 7 ", 7, true}, // spaces tolerated
		{"3,x", 5, true},     // malformed: applied rather than dropped
	} {
		if got := AddressedTo(tc.header, tc.dest); got != tc.want {
			t.Errorf("AddressedTo(%q, %d) = %v, want %v", tc.header, tc.dest, got, tc.want)
		}
	}
}
