package backfill

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestProgressLog checks the cadence and content of a job's progress
// lines: every 2s or every tenth of the total, with rate and ETA.
func TestProgressLog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	total := int64(100000)
	p := newProgressLog(log, 0, &total, func() time.Time { return now })
	lines := func() []string {
		out := strings.Split(strings.TrimSpace(buf.String()), "\n")
		if out[0] == "" {
			return nil
		}
		return out
	}

	now = now.Add(500 * time.Millisecond)
	p.copied(5000) // under a tenth, under 2s: quiet
	if got := lines(); len(got) != 0 {
		t.Fatalf("logged too soon: %q", got)
	}
	now = now.Add(500 * time.Millisecond)
	p.copied(10000) // a tenth reached
	now = now.Add(1500 * time.Millisecond)
	p.copied(12000) // neither
	now = now.Add(600 * time.Millisecond)
	p.copied(13000) // 2s since the last line
	got := lines()
	if len(got) != 2 {
		t.Fatalf("lines = %q", got)
	}
	want := `level=INFO msg="backfill progress" rows_copied=10000 rows_per_s=10000 rows_total_estimate=100000 percent=10.0 eta=9s`
	if got[0] != want {
		t.Fatalf("line = %q\nwant   %q", got[0], want)
	}
	if !strings.Contains(got[1], "rows_copied=13000") || !strings.Contains(got[1], "percent=13.0") {
		t.Fatalf("second line = %q", got[1])
	}

	// Without an estimate: rows and rate only, every 2s.
	buf.Reset()
	q := newProgressLog(log, 500, nil, func() time.Time { return now })
	now = now.Add(2 * time.Second)
	q.copied(4500)
	if got := lines(); len(got) != 1 || got[0] != `level=INFO msg="backfill progress" rows_copied=4500 rows_per_s=2000` {
		t.Fatalf("lines without a total = %q", got)
	}
}
