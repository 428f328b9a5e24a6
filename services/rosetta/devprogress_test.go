package main

import "testing"

func TestJobLine(t *testing.T) {
	n := func(v int64) *int64 { return &v }
	tests := []struct {
		copied int64
		total  *int64
		rate   float64
		want   string
	}{
		{5000, n(10000), 2500, "snapshot of public.orders (pipeline 1): 5,000/10,000 rows (50%), 2,500 rows/s, ETA 2s"},
		{0, n(10000), 0, "snapshot of public.orders (pipeline 1): 0/10,000 rows (0%)"},
		{12000, n(10000), 100, "snapshot of public.orders (pipeline 1): 12,000/10,000 rows (100%), 100 rows/s"},
		{1234567, nil, 50000.7, "snapshot of public.orders (pipeline 1): 1,234,567 rows, 50,000 rows/s"},
	}
	for _, tt := range tests {
		if got := jobLine("snapshot of public.orders (pipeline 1)", tt.copied, tt.total, tt.rate); got != tt.want {
			t.Errorf("jobLine(%d, %v, %v) = %q, want %q", tt.copied, tt.total, tt.rate, got, tt.want)
		}
	}
	if got := redactDSN("postgres://loader:s3cret@db:5432/rosetta?sslmode=disable&password=x"); got != "postgres://loader@db:5432/rosetta" {
		t.Errorf("redactDSN = %q", got)
	}
	if got := redactDSN("host=db password=s3cret"); got != "DSN set by ROSETTA_CONFIG_DSN" {
		t.Errorf("redactDSN of a keyword DSN = %q", got)
	}
}
