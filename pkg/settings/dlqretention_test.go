package settings

import (
	"strings"
	"testing"
	"time"
)

func TestDLQRetention(t *testing.T) {
	for _, tc := range []struct {
		name, entries, age string
		want               DLQRetention
		err                string
	}{
		{"defaults", "", "", DLQRetention{100000, 30 * 24 * time.Hour}, ""},
		{"days", "5", "7d", DLQRetention{5, 7 * 24 * time.Hour}, ""},
		{"duration", "0", "36h", DLQRetention{0, 36 * time.Hour}, ""},
		{"disabled", "0", "0", DLQRetention{}, ""},
		{"negative entries", "-1", "", DLQRetention{}, "ROSETTA_DLQ_MAX_ENTRIES=\"-1\": want a count"},
		{"bad age", "", "a week", DLQRetention{}, "ROSETTA_DLQ_MAX_AGE=\"a week\": want a duration like 30d"},
		{"too short", "", "10s", DLQRetention{}, "is under a minute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvDLQMaxEntries, tc.entries)
			t.Setenv(EnvDLQMaxAge, tc.age)
			r := DefaultDLQRetention()
			err := r.load()
			if err == nil {
				err = r.validate()
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || r != tc.want {
				t.Fatalf("retention = %+v, %v; want %+v", r, err, tc.want)
			}
		})
	}
}
