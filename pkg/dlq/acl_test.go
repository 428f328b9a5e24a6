package dlq

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// TestACL runs every operation of a Queue as an ACL user with only
// ACLRules, so a command the code starts to use without the rules (and
// the docs) granting it fails here with NOPERM.
func TestACL(t *testing.T) {
	t.Parallel()
	const pw = "acl-test-password"
	r := testkit.StartRedisWith(t, testkit.RedisOptions{Users: []string{"rosetta on >" + pw + " " + ACLRules}})
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr(), Username: "rosetta", Password: pw, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	exerciseQueue(t, rdb)
}

// exerciseQueue runs every operation of a Queue with the default prefix
// on rdb, and checks a key outside it is refused.
func exerciseQueue(t *testing.T, rdb *redis.Client) {
	t.Helper()
	q, err := New(rdb, Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 1; i <= 4; i++ {
		add(t, q, entryOf(t, change(i, uint64(100+i), "x"), "public.items"))
	}
	add(t, q, entryOf(t, change(9, 200, "x"), "public.other"))
	if _, err := q.Stats(ctx, 3, 7); err != nil {
		t.Fatalf("stats: %v", err)
	}
	if _, err := q.List(ctx, ListOptions{SourceID: 3, DestinationID: 7}); err != nil {
		t.Fatalf("list: %v", err)
	}
	if _, err := q.OldestVersions(ctx, 3, 7, []string{"public.items"}); err != nil {
		t.Fatalf("oldest versions: %v", err)
	}
	// One change committed, the others rejected again (requeued).
	res, err := q.Replay(ctx, ReplayOptions{SourceID: 3, DestinationID: 7, Table: "public.items", Consumer: "acl"},
		func(_ context.Context, cs []contracts.Change) ([]error, error) {
			errs := make([]error, len(cs))
			for i := 1; i < len(cs); i++ {
				errs[i] = context.Canceled
			}
			return errs, nil
		})
	if err != nil || res.Replayed != 1 || res.Failed != 3 {
		t.Fatalf("replay = %+v, %v; want 1 replayed, 3 failed", res, err)
	}
	got, err := q.Trim(ctx, 3, 7, Retention{MaxEntries: 2, MaxAge: time.Hour}, time.Now())
	if err != nil || len(got) != 1 || got[0].ByEntries != 1 {
		t.Fatalf("trim = %+v, %v; want 1 of public.items", got, err)
	}
	if n, err := q.Discard(ctx, 3, 7, ""); err != nil || n != 3 {
		t.Fatalf("discard = %d, %v; want 3", n, err)
	}
	// Keys outside the prefix stay out of reach.
	if err := rdb.Set(ctx, "other:key", "v", 0).Err(); err == nil {
		t.Fatal("SET outside dlq: succeeded; want NOPERM")
	}
}
