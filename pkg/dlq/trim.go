package dlq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Retention bounds every stream: entries older than MaxAge go, then the
// oldest entries beyond MaxEntries. Zero disables either bound.
//
// An entry's age is that of its id, i.e. since it was written: since it
// was dead-lettered, or since its last failed replay (a replay that fails
// again writes a fresh copy of the entry).
type Retention struct {
	MaxEntries int64
	MaxAge     time.Duration
}

// Enabled reports whether any bound is set.
func (r Retention) Enabled() bool { return r.MaxEntries > 0 || r.MaxAge > 0 }

// Validate checks the bounds are not negative.
func (r Retention) Validate() error {
	if r.MaxEntries < 0 || r.MaxAge < 0 {
		return errors.New("dlq: retention bounds must not be negative (0 disables one)")
	}
	return nil
}

// Reasons a Trimmed count gives.
const (
	TrimAge     = "age"
	TrimEntries = "entries"
)

// Trimmed counts what Trim removed from one table's stream.
type Trimmed struct {
	Table     string
	ByAge     int64
	ByEntries int64
}

// trimBatch is how many entries one script call removes at most, so that
// a large first trim does not block Redis for long.
const trimBatch = 1000

// trimScript removes the oldest entries of a stream, at most ARGV[3] of
// them: those older than ARGV[2] (a millisecond time) with mode "age", those
// beyond ARGV[2] entries with mode "entries". It first forgets their
// msg_ids where the ids hash still maps them to these entries (so that the
// change, dead-lettered again, makes a new entry), then trims the stream
// with XTRIM MINID just past the newest entry it read: exactly the entries
// read, since they are the oldest ones. Returns how many it removed.
//
// KEYS: stream, ids hash. ARGV: mode, bound, batch.
var trimScript = redis.NewScript(`
local batch = tonumber(ARGV[3])
local msgs
if ARGV[1] == 'age' then
  msgs = redis.call('XRANGE', KEYS[1], '-', '(' .. ARGV[2] .. '-0', 'COUNT', batch)
else
  local excess = redis.call('XLEN', KEYS[1]) - tonumber(ARGV[2])
  if excess <= 0 then return 0 end
  msgs = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', math.min(excess, batch))
end
if #msgs == 0 then return 0 end
for _, m in ipairs(msgs) do
  local f = m[2]
  for i = 1, #f, 2 do
    if f[i] == 'msg_id' then
      if redis.call('HGET', KEYS[2], f[i + 1]) == m[1] then
        redis.call('HDEL', KEYS[2], f[i + 1])
      end
      break
    end
  end
end
local ms, seq = string.match(msgs[#msgs][1], '^(%d+)-(%d+)$')
return redis.call('XTRIM', KEYS[1], 'MINID', ms .. '-' .. string.format('%d', tonumber(seq) + 1))
`)

// Trim applies r to every table's stream of a source for a destination, as
// of now, and returns what it removed from each table that lost entries.
// Trimming is atomic per batch and idempotent: sinks trimming the same
// streams at once each count only what they removed. An entry being
// replayed meanwhile that is trimmed is skipped by the replay (as a
// discarded one is). A trimmed entry no longer holds down the tombstone
// collection floor (OldestVersions).
func (q *Queue) Trim(ctx context.Context, sourceID, destinationID int64, r Retention, now time.Time) ([]Trimmed, error) {
	if !r.Enabled() {
		return nil, nil
	}
	tables, err := q.Tables(ctx, sourceID, destinationID)
	if err != nil {
		return nil, err
	}
	var out []Trimmed
	for _, t := range tables {
		key := q.Key(sourceID, t, destinationID)
		tr := Trimmed{Table: t}
		if r.MaxAge > 0 {
			bound := strconv.FormatInt(now.Add(-r.MaxAge).UnixMilli(), 10)
			if tr.ByAge, err = q.trimStream(ctx, key, TrimAge, bound); err != nil {
				return out, err
			}
		}
		if r.MaxEntries > 0 {
			if tr.ByEntries, err = q.trimStream(ctx, key, TrimEntries, strconv.FormatInt(r.MaxEntries, 10)); err != nil {
				return out, err
			}
		}
		if tr.ByAge > 0 || tr.ByEntries > 0 {
			out = append(out, tr)
		}
	}
	return out, nil
}

// trimStream runs trimScript until a call removes less than a batch.
func (q *Queue) trimStream(ctx context.Context, key, mode, bound string) (int64, error) {
	var total int64
	for {
		n, err := trimScript.Run(ctx, q.rdb, []string{key, idsKey(key)}, mode, bound, trimBatch).Int64()
		if err != nil {
			return total, fmt.Errorf("dlq trim %s by %s: %w", key, mode, err)
		}
		total += n
		if n < trimBatch {
			return total, nil
		}
	}
}
