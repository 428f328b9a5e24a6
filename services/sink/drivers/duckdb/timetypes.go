package duckdb

import (
	"database/sql/driver"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
)

// The converters of date and time types, whose PostgreSQL text output
// DuckDB does not read as it is (BC years, infinities, offsets).

var dateText = regexp.MustCompile(`^([0-9]{4,})-([0-9]{2})-([0-9]{2})( BC)?$`)

// convertDate reads date's ISO output ("2024-01-02", "0044-03-15 BC",
// "infinity") and writes it with an astronomical year, which DuckDB reads:
// 1 BC is year 0. Every PostgreSQL date fits DuckDB's DATE.
func convertDate(s string) (driver.Value, error) {
	if s == "infinity" || s == "-infinity" {
		return s, nil
	}
	m := dateText.FindStringSubmatch(s)
	if m == nil {
		return nil, fmt.Errorf("not a date in ISO DateStyle: %w", errNotExact)
	}
	y, mo, d, err := ymd(m[1], m[2], m[3], m[4] != "")
	if err != nil {
		return nil, err
	}
	if err := checkDate(y, mo, d); err != nil {
		return nil, err
	}
	return formatYear(y) + fmt.Sprintf("-%02d-%02d", mo, d), nil
}

func ymd(ys, ms, ds string, bc bool) (y, m, d int, err error) {
	y, err1 := strconv.Atoi(ys)
	m, err2 := strconv.Atoi(ms)
	d, err3 := strconv.Atoi(ds)
	if err1 != nil || err2 != nil || err3 != nil || y > 100_000_000 {
		return 0, 0, 0, fmt.Errorf("date fields out of range: %w", errNotExact)
	}
	if bc {
		if y == 0 {
			return 0, 0, 0, fmt.Errorf("year 0 BC does not exist: %w", errNotExact)
		}
		y = 1 - y
	}
	return y, m, d, nil
}

func checkDate(y, m, d int) error {
	t := time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC)
	if t.Year() != y || int(t.Month()) != m || t.Day() != d {
		return fmt.Errorf("not a calendar date: %w", errNotExact)
	}
	return nil
}

func formatYear(y int) string {
	if y < 0 {
		return fmt.Sprintf("-%04d", -y)
	}
	return fmt.Sprintf("%04d", y)
}

var timestampText = regexp.MustCompile(`^([0-9]{4,})-([0-9]{2})-([0-9]{2})[ T]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?` +
	`(?:([+-])([0-9]{2})(?::([0-9]{2}))?(?::([0-9]{2}))?)?( BC)?$`)

// DuckDB stores a timestamp as microseconds since 1970 in an int64 whose
// extremes mean ±infinity; the last finite instant is 294247-01-10
// 04:00:54.775806 UTC. PostgreSQL goes up to 294276 AD.
const maxTimestampMicros = math.MaxInt64 - 1

// timestampConverter reads timestamp / timestamptz ISO output
// ("2024-01-02 03:04:05.123456", with "+05:30"-style offsets for tz,
// " BC" for BC years, "infinity", "-infinity") and writes a form DuckDB
// reads exactly: astronomical year, six fraction digits, and for tz the
// instant in UTC.
func timestampConverter(tz bool) func(string) (driver.Value, error) {
	name := "timestamp"
	if tz {
		name = "timestamptz"
	}
	return func(s string) (driver.Value, error) {
		if s == "infinity" || s == "-infinity" {
			return s, nil
		}
		m := timestampText.FindStringSubmatch(s)
		if m == nil || (m[8] != "") != tz {
			return nil, fmt.Errorf("not a %s in ISO DateStyle: %w", name, errNotExact)
		}
		y, mo, d, err := ymd(m[1], m[2], m[3], m[12] != "")
		if err != nil {
			return nil, err
		}
		if err := checkDate(y, mo, d); err != nil {
			return nil, err
		}
		hh, _ := strconv.Atoi(m[4])
		mi, _ := strconv.Atoi(m[5])
		ss, _ := strconv.Atoi(m[6])
		if hh > 23 || mi > 59 || ss > 59 {
			return nil, fmt.Errorf("time of day out of range: %w", errNotExact)
		}
		us := fraction(m[7])
		t := time.Date(y, time.Month(mo), d, hh, mi, ss, us*1000, time.UTC)
		if tz {
			off, err := offsetSeconds(m[8], m[9], m[10], m[11])
			if err != nil {
				return nil, err
			}
			t = t.Add(-time.Duration(off) * time.Second)
		}
		// Seconds since 1970 fit an int64 for any year PostgreSQL has;
		// the microseconds may not, which is what DuckDB cannot hold.
		sec := t.Unix()
		if sec > maxTimestampMicros/1_000_000 || (sec == maxTimestampMicros/1_000_000 && int64(us) > maxTimestampMicros%1_000_000) ||
			sec < -maxTimestampMicros/1_000_000 {
			return nil, fmt.Errorf("beyond DuckDB's timestamp range (294247-01-10 04:00:54.775806 UTC): %w", errNotExact)
		}
		out := formatYear(t.Year()) + fmt.Sprintf("-%02d-%02d %02d:%02d:%02d.%06d", t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), us)
		if tz {
			out += "+00"
		}
		return out, nil
	}
}

// fraction turns up to six fraction digits into microseconds.
func fraction(digits string) int {
	if digits == "" {
		return 0
	}
	v, _ := strconv.Atoi(digits + strings.Repeat("0", 6-len(digits)))
	return v
}

// offsetSeconds reads a UTC offset "+05", "-03:30", "+00:53:28" and checks
// it against the ±15:59:59 both PostgreSQL and DuckDB allow.
func offsetSeconds(sign, hh, mm, ss string) (int, error) {
	h, _ := strconv.Atoi(hh)
	m, s := 0, 0
	if mm != "" {
		m, _ = strconv.Atoi(mm)
	}
	if ss != "" {
		s, _ = strconv.Atoi(ss)
	}
	if h > 15 || m > 59 || s > 59 {
		return 0, fmt.Errorf("UTC offset out of range: %w", errNotExact)
	}
	off := h*3600 + m*60 + s
	if sign == "-" {
		off = -off
	}
	return off, nil
}

var timeText = regexp.MustCompile(`^([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?(?:([+-])([0-9]{2})(?::([0-9]{2}))?(?::([0-9]{2}))?)?$`)

// timeConverter reads time / timetz output ("03:04:05.123456",
// "24:00:00", "03:04:05+05:30"); DuckDB's TIME also goes up to 24:00:00
// and its TIMETZ keeps the offset, like PostgreSQL's.
func timeConverter(tz bool) func(string) (driver.Value, error) {
	name := "time"
	if tz {
		name = "timetz"
	}
	return func(s string) (driver.Value, error) {
		m := timeText.FindStringSubmatch(s)
		if m == nil || (m[5] != "") != tz {
			return nil, fmt.Errorf("not a %s: %w", name, errNotExact)
		}
		hh, _ := strconv.Atoi(m[1])
		mi, _ := strconv.Atoi(m[2])
		ss, _ := strconv.Atoi(m[3])
		us := fraction(m[4])
		if mi > 59 || ss > 59 || hh > 24 || (hh == 24 && (mi != 0 || ss != 0 || us != 0)) {
			return nil, fmt.Errorf("time of day out of range: %w", errNotExact)
		}
		out := fmt.Sprintf("%02d:%02d:%02d.%06d", hh, mi, ss, us)
		if tz {
			off, err := offsetSeconds(m[5], m[6], m[7], m[8])
			if err != nil {
				return nil, err
			}
			sign := "+"
			if off < 0 {
				sign, off = "-", -off
			}
			out += fmt.Sprintf("%s%02d:%02d:%02d", sign, off/3600, off/60%60, off%60)
		}
		return out, nil
	}
}

var intervalTime = regexp.MustCompile(`^([+-])?([0-9]+):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?$`)

// convertInterval reads interval output in IntervalStyle postgres (which
// capture pins): "1 year 2 mons -3 days +04:05:06.789". PostgreSQL and
// DuckDB both keep an interval as months (int32), days (int32) and
// microseconds (int64), so the value is sent as those three fields, never
// re-spelled as text. PostgreSQL 17's infinite intervals have no DuckDB form.
func convertInterval(s string) (driver.Value, error) {
	if s == "infinity" || s == "-infinity" {
		return nil, fmt.Errorf("infinite interval: %w", errNotExact)
	}
	var months, days, micros int64
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return nil, fmt.Errorf("empty interval: %w", errNotExact)
	}
	bad := fmt.Errorf("not an interval in IntervalStyle postgres: %w", errNotExact)
	overflow := fmt.Errorf("interval field out of range: %w", errNotExact)
	for i := 0; i < len(fields); i++ {
		if m := intervalTime.FindStringSubmatch(fields[i]); m != nil {
			if i != len(fields)-1 {
				return nil, bad
			}
			h, err := strconv.ParseInt(m[2], 10, 64)
			if err != nil {
				return nil, overflow
			}
			mi, _ := strconv.ParseInt(m[3], 10, 64)
			ss, _ := strconv.ParseInt(m[4], 10, 64)
			if mi > 59 || ss > 59 {
				return nil, bad
			}
			// |h| * 3.6e9 + the rest must fit an int64; negative values
			// may reach one further (math.MinInt64).
			rest := mi*60_000_000 + ss*1_000_000 + int64(fraction(m[5]))
			limit := uint64(math.MaxInt64)
			if m[1] == "-" {
				limit++
			}
			if uint64(h) > (limit-uint64(rest))/3_600_000_000 {
				return nil, overflow
			}
			abs := uint64(h)*3_600_000_000 + uint64(rest)
			if m[1] == "-" {
				micros = int64(-abs) // two's complement also gives MinInt64
			} else {
				micros = int64(abs)
			}
			continue
		}
		if i+1 >= len(fields) {
			return nil, bad
		}
		n, err := strconv.ParseInt(fields[i], 10, 64)
		if err != nil {
			return nil, bad
		}
		if n > 1<<40 || n < -1<<40 {
			return nil, overflow
		}
		i++
		switch fields[i] {
		case "year", "years":
			months += n * 12
		case "mon", "mons":
			months += n
		case "day", "days":
			days += n
		default:
			return nil, bad
		}
		if months > math.MaxInt32 || months < math.MinInt32 || days > math.MaxInt32 || days < math.MinInt32 {
			return nil, overflow
		}
	}
	return duckdb.Interval{Months: int32(months), Days: int32(days), Micros: micros}, nil
}
