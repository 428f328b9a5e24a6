package dlq

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
)

// ApplyFunc applies changes to the destination the entries were rejected
// by. It returns one error per change: nil when the destination committed
// it (a change superseded by a newer one of the same key in the same commit
// counts as committed), or the reason the destination rejected it for good.
// A non-nil err means the outcome is unknown (destination unavailable, ctx
// ended): nothing of the call is recorded, and its entries stay pending in
// the consumer group for a later replay to reclaim and apply again.
type ApplyFunc func(ctx context.Context, changes []contracts.Change) (failed []error, err error)

// ReplayOptions says what one replay does.
type ReplayOptions struct {
	SourceID      int64
	DestinationID int64
	// Table replays one table (schema.table); empty replays every table.
	Table string
	// MaxCount is the most entries handled (replayed or failed again); 0
	// handles every entry present when each table's replay starts.
	MaxCount int64
	// Consumer names this worker in the consumer group. It must be unique
	// per run: a run reclaims what earlier consumers left pending.
	Consumer string
	// Classify names the class of a failure ("permanent" when nil).
	Classify func(error) string
	// Progress, when set, is called after every applied batch.
	Progress func(ReplayResult)
}

// ReplayResult counts what a replay did.
type ReplayResult struct {
	// Replayed entries were committed by the destination and removed.
	Replayed int64
	// Failed entries were rejected again; they stay, attempts raised.
	Failed int64
}

// ackScript removes entries the destination committed: XACK, XDEL, and
// their msg_id mapping when it still points at them.
//
// KEYS: stream, ids hash. ARGV: group, then id, msg_id pairs.
var ackScript = redis.NewScript(`
local n = 0
for i = 2, #ARGV, 2 do
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[i])
  n = n + redis.call('XDEL', KEYS[1], ARGV[i])
  if redis.call('HGET', KEYS[2], ARGV[i + 1]) == ARGV[i] then
    redis.call('HDEL', KEYS[2], ARGV[i + 1])
  end
end
return n
`)

// requeueScript replaces an entry that failed again by a copy at the end of
// the stream with attempts raised and the new error, atomically: the copy
// is added, the original acked and deleted, the msg_id mapped to the copy.
// An entry deleted meanwhile (discarded) is only acked.
//
// KEYS: stream, ids hash. ARGV: group, id, error_class, error, last_failed_at.
// Returns the copy's id, or false.
var requeueScript = redis.NewScript(`
local r = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
if #r == 0 then return false end
local f = r[1][2]
local out, msgid = {}, nil
for i = 1, #f, 2 do
  local k, v = f[i], f[i + 1]
  if k == 'attempts' then v = tostring((tonumber(v) or 0) + 1)
  elseif k == 'error_class' then v = ARGV[3]
  elseif k == 'error' then v = ARGV[4]
  elseif k == 'last_failed_at' then v = ARGV[5]
  elseif k == 'msg_id' then msgid = v end
  out[#out + 1] = k
  out[#out + 1] = v
end
local id = redis.call('XADD', KEYS[1], '*', unpack(out))
redis.call('XDEL', KEYS[1], ARGV[2])
if msgid then redis.call('HSET', KEYS[2], msgid, id) end
return id
`)

// Replay applies the entries of a destination's queues through apply and
// removes each one only after the destination committed it.
//
// Per table it first reclaims (XAUTOCLAIM) entries earlier consumers read
// but did not finish, then reads (XREADGROUP) entries up to the newest one
// present when the table's replay started; entries added later (new
// failures, and copies of entries that failed again) wait for the next
// replay, so a replay always ends. Entries are applied ApplyBatch at a time.
//
// When ctx ends, or apply or Redis fails, Replay returns with what it did
// and the error; the entries it read and did not finish stay pending for the
// next replay.
func (q *Queue) Replay(ctx context.Context, o ReplayOptions, apply ApplyFunc) (ReplayResult, error) {
	var res ReplayResult
	if o.Consumer == "" {
		return res, errors.New("dlq replay: no consumer name")
	}
	tables := []string{o.Table}
	if o.Table == "" {
		var err error
		if tables, err = q.Tables(ctx, o.SourceID, o.DestinationID); err != nil {
			return res, err
		}
	}
	budget := o.MaxCount
	if budget <= 0 {
		budget = math.MaxInt64
	}
	r := &replay{q: q, o: o, apply: apply, res: &res, budget: budget}
	for _, t := range tables {
		if r.budget == 0 {
			break
		}
		if err := r.table(ctx, t); err != nil {
			return res, err
		}
	}
	return res, nil
}

type replay struct {
	q      *Queue
	o      ReplayOptions
	apply  ApplyFunc
	res    *ReplayResult
	budget int64
}

func (r *replay) count() int64 { return min(int64(r.q.cfg.ReadCount), r.budget) }

// table replays one table's stream.
func (r *replay) table(ctx context.Context, table string) error {
	q := r.q
	key := q.Key(r.o.SourceID, table, r.o.DestinationID)
	newest, err := q.rdb.XRevRangeN(ctx, key, "+", "-", 1).Result()
	if err != nil {
		return fmt.Errorf("dlq replay %s: read newest entry: %w", key, err)
	}
	if len(newest) == 0 {
		return nil // empty: nothing is pending either
	}
	stop := newest[0].ID
	// "0": a group created now delivers every entry already there.
	if err := q.rdb.XGroupCreate(ctx, key, q.cfg.Group, "0").Err(); err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("dlq replay %s: create group: %w", key, err)
	}
	// Entries a stopped worker read and did not finish.
	cursor := "0-0"
	for r.budget > 0 {
		msgs, next, err := q.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: key, Group: q.cfg.Group, Consumer: r.o.Consumer,
			MinIdle: q.cfg.ReclaimMinIdle, Start: cursor, Count: r.count(),
		}).Result()
		if isNoGroup(err) {
			return nil // discarded meanwhile
		}
		if err != nil {
			return fmt.Errorf("dlq replay %s: reclaim pending entries: %w", key, err)
		}
		if err := r.handle(ctx, key, msgs); err != nil {
			return err
		}
		if next == "0-0" || next == "" {
			break
		}
		cursor = next
	}
	// New entries, up to stop.
	groups, err := q.rdb.XInfoGroups(ctx, key).Result()
	if err != nil {
		if isNoGroup(err) || errors.Is(err, redis.Nil) || strings.Contains(err.Error(), "no such key") {
			return nil
		}
		return fmt.Errorf("dlq replay %s: read group: %w", key, err)
	}
	last := "0-0"
	for _, g := range groups {
		if g.Name == q.cfg.Group {
			last = g.LastDeliveredID
		}
	}
	for r.budget > 0 {
		// Read exactly the entries up to stop, so that none beyond it
		// becomes pending for this consumer. (If entries are deleted
		// between the two calls, one beyond stop may be read; it is
		// handled like the others.)
		ahead, err := q.rdb.XRangeN(ctx, key, "("+last, stop, r.count()).Result()
		if err != nil {
			return fmt.Errorf("dlq replay %s: read entries: %w", key, err)
		}
		if len(ahead) == 0 {
			return nil
		}
		streams, err := q.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: q.cfg.Group, Consumer: r.o.Consumer, Streams: []string{key, ">"}, Count: int64(len(ahead)), Block: -1,
		}).Result()
		if errors.Is(err, redis.Nil) || isNoGroup(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("dlq replay %s: read entries: %w", key, err)
		}
		var msgs []redis.XMessage
		for _, s := range streams {
			msgs = append(msgs, s.Messages...)
		}
		if len(msgs) == 0 {
			return nil
		}
		last = msgs[len(msgs)-1].ID
		if err := r.handle(ctx, key, msgs); err != nil {
			return err
		}
	}
	return nil
}

// handle applies msgs ApplyBatch at a time and records each outcome.
func (r *replay) handle(ctx context.Context, key string, msgs []redis.XMessage) error {
	for len(msgs) > 0 {
		if err := ctx.Err(); err != nil {
			// Stopped between batches: what is left stays pending.
			return err
		}
		n := min(len(msgs), r.q.cfg.ApplyBatch)
		if err := r.batch(ctx, key, msgs[:n]); err != nil {
			return err
		}
		msgs = msgs[n:]
	}
	return nil
}

func (r *replay) batch(ctx context.Context, key string, msgs []redis.XMessage) error {
	errs := make([]error, len(msgs))
	var changes []contracts.Change
	var at []int // index in msgs of each change
	for i, m := range msgs {
		body, _ := m.Values[fChange].(string)
		c, err := cdc.Decode([]byte(body))
		if err != nil {
			errs[i] = &undecodableError{err}
			continue
		}
		changes = append(changes, c)
		at = append(at, i)
	}
	if len(changes) > 0 {
		failed, err := r.apply(ctx, changes)
		if err != nil {
			return fmt.Errorf("dlq replay %s: apply: %w", key, err)
		}
		if len(failed) != 0 && len(failed) != len(changes) {
			return fmt.Errorf("dlq replay %s: apply returned %d results for %d changes", key, len(failed), len(changes))
		}
		for j, err := range failed {
			errs[at[j]] = err
		}
	}
	// The destination committed: record it even if ctx ended meanwhile.
	// Losing this would only cause a harmless second apply, but there is
	// no reason to.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	args := []any{r.q.cfg.Group}
	var ok, bad int64
	for i, m := range msgs {
		if errs[i] != nil {
			continue
		}
		msgID, _ := m.Values[fMsgID].(string)
		args = append(args, m.ID, msgID)
		ok++
	}
	keys := []string{key, idsKey(key)}
	if ok > 0 {
		if err := ackScript.Run(rctx, r.q.rdb, keys, args...).Err(); err != nil {
			return fmt.Errorf("dlq replay %s: remove replayed entries: %w", key, err)
		}
	}
	now := formatTime(time.Now())
	for i, m := range msgs {
		if errs[i] == nil {
			continue
		}
		class := "permanent"
		var ue *undecodableError
		switch {
		case errors.As(errs[i], &ue):
			class = "undecodable"
		case r.o.Classify != nil:
			class = r.o.Classify(errs[i])
		}
		err := requeueScript.Run(rctx, r.q.rdb, keys, r.q.cfg.Group, m.ID, class, truncate(errs[i].Error(), r.q.cfg.MaxErrorLen), now).Err()
		if err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("dlq replay %s: keep failed entry %s: %w", key, m.ID, err)
		}
		bad++
	}
	r.res.Replayed += ok
	r.res.Failed += bad
	r.budget -= int64(len(msgs))
	if r.o.Progress != nil {
		r.o.Progress(*r.res)
	}
	return nil
}

type undecodableError struct{ err error }

func (e *undecodableError) Error() string {
	return "entry does not hold a valid change: " + e.err.Error()
}
func (e *undecodableError) Unwrap() error { return e.err }

func isNoGroup(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOGROUP")
}
