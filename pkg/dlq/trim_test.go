package dlq

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// waitRedisPast waits until the server's clock is past the millisecond of
// entry id, so that the next entry gets a later millisecond.
func waitRedisPast(t *testing.T, rdb *redis.Client, id string) {
	t.Helper()
	after := IDTime(id)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		now, err := rdb.Time(context.Background()).Result()
		if err != nil {
			t.Fatal(err)
		}
		if now.UnixMilli() > after.UnixMilli() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("redis clock did not pass %s", id)
}

// TestTrim removes entries older than the maximum age and the oldest
// beyond the maximum count, forgets their msg_ids (the same change
// dead-lettered again makes a new entry) and lets the collection floor
// move past them.
func TestTrim(t *testing.T) {
	t.Parallel()
	r := testkit.StartRedis(t)
	ctx := context.Background()
	type result struct{ age, entries int64 }
	for _, tc := range []struct {
		name string
		old  int // entries written first, with LSNs 1000+i
		new  int // entries written a millisecond later at least, LSNs 5000+i
		ret  Retention
		want result
		// floor is the oldest LSN left.
		floor uint64
	}{
		{"age", 3, 2, Retention{MaxAge: time.Hour}, result{age: 3}, 5001},
		{"entries oldest first", 6, 4, Retention{MaxEntries: 4}, result{entries: 6}, 5001},
		{"entries within the new ones", 2, 5, Retention{MaxEntries: 3}, result{entries: 4}, 5003},
		{"both", 4, 5, Retention{MaxAge: time.Hour, MaxEntries: 2}, result{age: 4, entries: 3}, 5004},
		{"many batches", 2500, 1, Retention{MaxEntries: 1}, result{entries: 2500}, 5001},
		{"within bounds", 2, 2, Retention{MaxAge: 2 * time.Hour, MaxEntries: 10}, result{}, 1001},
		{"disabled", 2, 2, Retention{}, result{}, 1001},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			q, rdb := newQueue(t, r, Config{})
			var olds, news []Entry
			var lastOld string
			for i := 1; i <= tc.old; i++ {
				e := entryOf(t, change(i, uint64(1000+i), "old"), "public.items")
				lastOld = add(t, q, e)
				olds = append(olds, e)
			}
			waitRedisPast(t, rdb, lastOld)
			var firstNew string
			for i := 1; i <= tc.new; i++ {
				e := entryOf(t, change(100000+i, uint64(5000+i), "new"), "public.items")
				id := add(t, q, e)
				if firstNew == "" {
					firstNew = id
				}
				news = append(news, e)
			}
			// An hour after the first new entry: the old ones are more
			// than an hour old, the new ones not.
			now := IDTime(firstNew).Add(time.Hour)
			got, err := q.Trim(ctx, 3, 7, tc.ret, now)
			if err != nil {
				t.Fatal(err)
			}
			var res result
			for _, g := range got {
				res.age += g.ByAge
				res.entries += g.ByEntries
			}
			if res != tc.want {
				t.Fatalf("trimmed %+v (%+v), want %+v", res, got, tc.want)
			}
			all := append(olds, news...)
			gone := int(tc.want.age + tc.want.entries)
			key := q.Key(3, "public.items", 7)
			if n := rdb.XLen(ctx, key).Val(); n != int64(len(all)-gone) {
				t.Fatalf("stream holds %d, want %d", n, len(all)-gone)
			}
			// The ids hash remembers exactly the entries left.
			for i, e := range all {
				has := rdb.HExists(ctx, idsKey(key), e.MsgID).Val()
				if has != (i >= gone) {
					t.Fatalf("entry %d of %d (%s): ids hash has it = %v, want %v", i, len(all), e.MsgID, has, i >= gone)
				}
			}
			floor, err := q.OldestVersions(ctx, 3, 7, []string{"public.items"})
			if err != nil {
				t.Fatal(err)
			}
			if floor["public.items"].LSN != tc.floor {
				t.Fatalf("floor = %v, want LSN %d", floor, tc.floor)
			}
			if gone > 0 {
				// The trimmed change, rejected again, is a new entry.
				if _, added, err := q.Add(ctx, all[0]); err != nil || !added {
					t.Fatalf("add a trimmed change again: added %v, %v; want a new entry", added, err)
				}
			}
		})
	}
}

// TestTrimKeepsRequeuedCopy: an entry that failed a replay again is a
// fresh copy; trimming by age keeps it and its msg_id mapping.
func TestTrimKeepsRequeuedCopy(t *testing.T) {
	t.Parallel()
	q, rdb := newQueue(t, testkit.StartRedis(t), Config{})
	ctx := context.Background()
	e := entryOf(t, change(1, 100, "x"), "public.items")
	first := add(t, q, e)
	waitRedisPast(t, rdb, first)
	_, err := q.Replay(ctx, ReplayOptions{SourceID: 3, DestinationID: 7, Consumer: "c"},
		func(_ context.Context, cs []contracts.Change) ([]error, error) { return []error{context.Canceled}, nil })
	if err != nil {
		t.Fatal(err)
	}
	key := q.Key(3, "public.items", 7)
	copyID := rdb.HGet(ctx, idsKey(key), e.MsgID).Val()
	if copyID == first || copyID == "" {
		t.Fatalf("ids hash maps to %q after the requeue; want the copy", copyID)
	}
	got, err := q.Trim(ctx, 3, 7, Retention{MaxAge: time.Hour}, IDTime(copyID).Add(time.Hour))
	if err != nil || len(got) != 0 {
		t.Fatalf("trim = %+v, %v; want nothing trimmed", got, err)
	}
	if rdb.HGet(ctx, idsKey(key), e.MsgID).Val() != copyID || rdb.XLen(ctx, key).Val() != 1 {
		t.Fatal("the copy or its mapping is gone")
	}
}
