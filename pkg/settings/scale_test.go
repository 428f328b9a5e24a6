package settings

import (
	"slices"
	"strings"
	"testing"
)

func TestParseDestinationIDs(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    []int64
		wantErr string
	}{
		{"", nil, ""},
		{"  ", nil, ""},
		{"3,7", []int64{3, 7}, ""},
		{" 7 , 3,7", []int64{3, 7}, ""},
		{"3,,7", nil, `"" is not a destination id`},
		{"3,x", nil, `"x" is not a destination id`},
		{"0", nil, `"0" is not a destination id`},
		{"-2", nil, `"-2" is not a destination id`},
	} {
		got, err := ParseDestinationIDs(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseDestinationIDs(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ParseDestinationIDs(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestLoadSinkDestinations(t *testing.T) {
	t.Setenv(EnvSinkDestinations, "7,3")
	s, err := Load()
	if err != nil || !slices.Equal(s.SinkDestinations, []int64{3, 7}) {
		t.Fatalf("Load: %v, %v", s.SinkDestinations, err)
	}
	t.Setenv(EnvSinkDestinations, "3;7")
	if _, err := Load(); err == nil || !strings.Contains(err.Error(), EnvSinkDestinations) {
		t.Fatalf("Load with a bad list: %v, want an error naming %s", err, EnvSinkDestinations)
	}
}
