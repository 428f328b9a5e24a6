package dlq

import (
	"context"
	"fmt"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
)

// OldestVersions returns, for each of tables that has entries for the
// destination, the oldest version among them: a replay may still apply
// any of them, so a destination must keep refusing changes older than
// their keys' deletes at least down to it (docs/delivery.md, "Collecting
// tombstones"). An entry whose change does not decode counts as the zero
// version. Entries being replayed stay in the stream until they are
// applied, so they are read too. It reads every entry, in pages.
func (q *Queue) OldestVersions(ctx context.Context, sourceID, destinationID int64, tables []string) (map[string]contracts.Version, error) {
	have, err := q.Tables(ctx, sourceID, destinationID)
	if err != nil {
		return nil, err
	}
	known := map[string]bool{}
	for _, t := range have {
		known[t] = true
	}
	out := map[string]contracts.Version{}
	for _, t := range tables {
		if !known[t] {
			continue
		}
		key := q.Key(sourceID, t, destinationID)
		start := "-"
		for {
			msgs, err := q.rdb.XRangeN(ctx, key, start, "+", 1000).Result()
			if err != nil {
				return nil, fmt.Errorf("dlq oldest version of %s: %w", key, err)
			}
			for _, m := range msgs {
				v := entryVersion(m.Values[fChange])
				if have, ok := out[t]; !ok || v.Less(have) {
					out[t] = v
				}
			}
			if len(msgs) < 1000 {
				break
			}
			start = "(" + msgs[len(msgs)-1].ID
		}
	}
	return out, nil
}

// entryVersion is the version of an entry's change; zero when it does not
// decode.
func entryVersion(field any) contracts.Version {
	s, _ := field.(string)
	c, err := cdc.Decode([]byte(s))
	if err != nil {
		return contracts.Version{}
	}
	v, err := c.Version()
	if err != nil {
		return contracts.Version{}
	}
	return v
}
