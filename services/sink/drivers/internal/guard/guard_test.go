package guard_test

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/rosettacdc/rosetta/contracts"

	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/guard/guardtest"
)

// TestSpecMatchesSource checks the specification itself: applied in order,
// one change at a time, and applied shuffled, duplicated and in random
// batches, it ends in the source's final state once the keys it reported
// for completion (ToComplete) were re-read from the source. Without the
// completion, histories whose moves arrived before an older change of
// their old key (Delivery.Stale) may differ; nothing else may.
func TestSpecMatchesSource(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 14))
	stale, total, completed := 0, 0, 0
	for round := 0; round < 30; round++ {
		s := guardtest.Generate(rng, "public", 3, 40, 8)
		total += s.Histories()
		inOrder := guardtest.Delivery{}
		for _, c := range s.Changes {
			inOrder.Batches = append(inOrder.Batches, []contracts.Change{c})
		}
		deliveries := []struct {
			name string
			d    guardtest.Delivery
		}{
			{"in order", inOrder},
			{"in order, batched", guardtest.InOrder(rng, s.Changes, 20)},
			{"shuffled", guardtest.Shuffle(rng, s.Changes, 0.3, 12)},
			{"shuffled, batch 1", guardtest.Shuffle(rng, s.Changes, 0.3, 1)},
			// Large batches hold both copies of a duplicated change, and
			// a key change with its old key's earlier changes.
			{"shuffled, large batches", guardtest.Shuffle(rng, s.Changes, 0.3, 400)},
		}
		for _, dl := range deliveries {
			name, d := dl.name, dl.d
			spec, reported, err := guardtest.SpecReports(d, s.Tables)
			if err != nil {
				t.Fatal(err)
			}
			got := guardtest.FromSpec(spec)
			for _, table := range s.Tables {
				if strings.HasPrefix(name, "shuffled") && name != "shuffled, batch 1" {
					stale += len(d.Stale[table])
				}
				if diff := guardtest.Diff(table, got[table], s.Truth[table], d.Stale[table], 5); len(diff) > 0 {
					t.Errorf("round %d, %s, before completion: %v", round, name, diff)
				}
				completed += len(reported[table])
			}
			if err := s.Complete(spec, reported); err != nil {
				t.Fatal(err)
			}
			got = guardtest.FromSpec(spec)
			for _, table := range s.Tables {
				if diff := guardtest.Diff(table, got[table], s.Truth[table], nil, 5); len(diff) > 0 {
					t.Errorf("round %d, %s, after completion: %v", round, name, diff)
				}
			}
		}
	}
	t.Logf("%d histories, %d with a stale move before completion, %d keys completed", total, stale, completed)
}
