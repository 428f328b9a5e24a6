package dlq

import (
	"context"
	"testing"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// TestOneChangeMessageEntry: a sink dead-letters one change of a version 2
// message of several as a version 2 message of that change alone; the
// floor and replay read it as the change.
func TestOneChangeMessageEntry(t *testing.T) {
	t.Parallel()
	q, _ := newQueue(t, testkit.StartRedis(t), Config{})
	ctx := context.Background()
	c := change(5, 7000, "v")
	c.V = contracts.MessageVersion
	c.Source.LSN = contracts.FormatLSN(6990)
	e := entryOf(t, c, "public.items")
	body, err := contracts.MessageOf([]contracts.Change{c}).AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	e.Change = body
	add(t, q, e)
	got, err := q.OldestVersions(ctx, 3, 7, []string{"public.items"})
	if err != nil || got["public.items"] != (contracts.Version{LSN: 7000, Seq: 5}) {
		t.Fatalf("oldest versions = %v, %v; want 0/1B58 seq 5", got, err)
	}
	var seen []contracts.Change
	apply := func(_ context.Context, cs []contracts.Change) ([]error, error) {
		seen = append(seen, cs...)
		return make([]error, len(cs)), nil
	}
	res, err := q.Replay(ctx, ReplayOptions{SourceID: 3, DestinationID: 7, Consumer: "w"}, apply)
	if err != nil || res.Replayed != 1 || res.Failed != 0 {
		t.Fatalf("replay = %+v, %v; want the one change replayed", res, err)
	}
	if len(seen) != 1 || seen[0].Source.Seq != 5 || seen[0].Source.LSN != c.Source.LSN || string(seen[0].Key["id"]) != "5" {
		t.Fatalf("replayed %+v", seen)
	}
}
