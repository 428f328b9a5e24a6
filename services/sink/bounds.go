package sink

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/dlq"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
)

// BoundsStore is what tombstone collection reads from the config store;
// *configstore.Store implements it. It is optional: with a ConfigStore
// that does not implement it, runners collect nothing.
type BoundsStore interface {
	// SourceStateOf holds capture's confirmed position (ConfirmedLSN).
	SourceStateOf(ctx context.Context, sourceID int64) (configstore.SourceState, error)
	BusyBackfillTables(ctx context.Context, sourceID int64) ([]string, error)
	ListAllPipelines(ctx context.Context) ([]configstore.Pipeline, error)
}

// guardBounds tells runners what may still reach a destination from
// outside their consumer (sinkrunner.GuardBounds): capture, backfills and
// the dead-letter queue. Sinks never connect to sources: capture's
// confirmed position comes from the state capture records in the config
// store, which trails the slot's (it is recorded after it advances).
type guardBounds struct {
	store BoundsStore
	q     *dlq.Queue // nil without Redis: no dead letters
}

var _ sinkrunner.GuardBounds = guardBounds{}

func (g guardBounds) PublishFloor(ctx context.Context, sourceID, pipelineID, destinationID int64, tables []string) (map[string]contracts.Version, error) {
	out := map[string]contracts.Version{}
	st, err := g.store.SourceStateOf(ctx, sourceID)
	if errors.Is(err, configstore.ErrNotFound) || err == nil && st.ConfirmedLSN == "" {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	confirmed, err := contracts.ParseLSN(st.ConfirmedLSN)
	if err != nil {
		return nil, fmt.Errorf("confirmed position of source %d: %w", sourceID, err)
	}
	busy, err := g.store.BusyBackfillTables(ctx, sourceID)
	if err != nil {
		return nil, err
	}
	skip := map[string]bool{}
	for _, t := range busy {
		skip[t] = true
	}
	pipelines, err := g.store.ListAllPipelines(ctx)
	if err != nil {
		return nil, err
	}
	// Destination tables are named after the source table's name: another
	// pipeline writing a table of that name to the destination shares
	// its tombstones.
	shared := map[string]bool{}
	for _, p := range pipelines {
		if p.ID == pipelineID || !containsID(p.DestinationIDs, destinationID) {
			continue
		}
		for _, t := range p.Tables {
			shared[tableName(t)] = true
		}
	}
	for _, t := range tables {
		if !skip[t] && !shared[tableName(t)] {
			// Seq 0: every change capture publishes from now on commits
			// at or after the confirmed position.
			out[t] = contracts.Version{LSN: confirmed}
		}
	}
	return out, nil
}

func (g guardBounds) DeadLetterFloor(ctx context.Context, sourceID, destinationID int64, tables []string) (map[string]contracts.Version, error) {
	if g.q == nil {
		return map[string]contracts.Version{}, nil
	}
	return g.q.OldestVersions(ctx, sourceID, destinationID, tables)
}

func tableName(schemaTable string) string {
	_, name, _ := strings.Cut(schemaTable, ".")
	return name
}

func containsID(ids []int64, id int64) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}
