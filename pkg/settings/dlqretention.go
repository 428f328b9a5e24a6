package settings

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Environment variables of the dead-letter queues' retention.
const (
	EnvDLQMaxEntries = "ROSETTA_DLQ_MAX_ENTRIES"
	EnvDLQMaxAge     = "ROSETTA_DLQ_MAX_AGE"
)

// Default retention of each dead-letter stream: entries are row data, so
// they do not stay forever, and a destination that rejects everything
// cannot fill Redis (100,000 entries of a few KB is a few hundred MB).
// 30 days leaves time to notice (rosetta_dlq_depth), fix and recover.
const (
	DefaultDLQMaxEntries = 100000
	DefaultDLQMaxAge     = 30 * 24 * time.Hour
)

// DLQRetention bounds every dead-letter stream; 0 disables a bound.
type DLQRetention struct {
	// DLQMaxEntries is the most entries a stream keeps; the oldest go.
	DLQMaxEntries int64
	// DLQMaxAge is how long an entry stays after it was written.
	DLQMaxAge time.Duration
}

// DefaultDLQRetention holds the defaults.
func DefaultDLQRetention() DLQRetention {
	return DLQRetention{DLQMaxEntries: DefaultDLQMaxEntries, DLQMaxAge: DefaultDLQMaxAge}
}

func (r *DLQRetention) load() error {
	if v := os.Getenv(EnvDLQMaxEntries); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("%s=%q: want a count of entries like 100000 (0 keeps every entry)", EnvDLQMaxEntries, v)
		}
		r.DLQMaxEntries = n
	}
	if v := os.Getenv(EnvDLQMaxAge); v != "" {
		d, err := ParseDays(v)
		if err != nil || d < 0 {
			return fmt.Errorf("%s=%q: want a duration like 30d or 72h (0 keeps entries of any age)", EnvDLQMaxAge, v)
		}
		r.DLQMaxAge = d
	}
	return nil
}

func (r DLQRetention) validate() error {
	if r.DLQMaxEntries < 0 || r.DLQMaxAge < 0 {
		return fmt.Errorf("%s and %s must not be negative (0 disables one)", EnvDLQMaxEntries, EnvDLQMaxAge)
	}
	if r.DLQMaxAge > 0 && r.DLQMaxAge < time.Minute {
		return fmt.Errorf("%s=%s is under a minute: dead letters would go before anyone could look at them; use 0 to keep them, or at least 1m", EnvDLQMaxAge, r.DLQMaxAge)
	}
	return nil
}

// ParseDays parses a Go duration, or a whole number of days like "30d".
func ParseDays(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil {
			return 0, fmt.Errorf("%q: want whole days like 30d", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}
