package dlq

import (
	"context"
	"testing"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// TestOldestVersions reads the oldest version per table over every entry,
// across pages and whatever the order entries were added in; an entry that
// does not decode counts as zero, a table without entries is absent.
func TestOldestVersions(t *testing.T) {
	t.Parallel()
	q, _ := newQueue(t, testkit.StartRedis(t), Config{})
	ctx := context.Background()
	// 2,500 entries of public.items, the oldest in the middle (pages of
	// 1,000), one of public.other.
	for i := 1; i <= 2500; i++ {
		lsn := uint64(5000 + i)
		if i == 1700 {
			lsn = 4000
		}
		add(t, q, entryOf(t, change(i, lsn, "v"), "public.items"))
	}
	add(t, q, entryOf(t, change(1, 9000, "v"), "public.other"))
	got, err := q.OldestVersions(ctx, 3, 7, []string{"public.items", "public.other", "public.none"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]contracts.Version{"public.items": {LSN: 4000, Seq: 1700}, "public.other": {LSN: 9000, Seq: 1}}
	if len(got) != len(want) || got["public.items"] != want["public.items"] || got["public.other"] != want["public.other"] {
		t.Fatalf("oldest versions = %v, want %v", got, want)
	}

	bad := Entry{SourceID: 3, DestinationID: 7, Table: "public.other", MsgID: "undecodable:x", Change: []byte("not json")}
	add(t, q, bad)
	got, err = q.OldestVersions(ctx, 3, 7, []string{"public.other"})
	if err != nil || len(got) != 1 || got["public.other"] != (contracts.Version{}) {
		t.Fatalf("with an undecodable entry = %v, %v; want the zero version", got, err)
	}
}
