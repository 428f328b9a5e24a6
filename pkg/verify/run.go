package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/snapshot"
)

// Run compares each of tables ("schema.table") at the source, read over
// src in one REPEATABLE READ READ ONLY transaction (a snapshot: no table
// lock, writers are not blocked), with each destination. A table that
// cannot be read gets a result with StatusError per destination; Run
// itself fails only when the source cannot be read at all.
func Run(ctx context.Context, src *pgx.Conn, tables []string, dests []Destination, ids []int64, opts Options) ([]TableResult, error) {
	loaded := make([]snapshot.Table, len(tables))
	loadErr := make([]error, len(tables))
	for i, name := range tables {
		schema, table, ok := strings.Cut(name, ".")
		if !ok {
			loadErr[i] = fmt.Errorf("table %q is not schema.table", name)
			continue
		}
		t, err := snapshot.LoadTable(ctx, src, schema, table)
		if errors.Is(err, snapshot.ErrNoTable) {
			err = fmt.Errorf("table %s does not exist at the source", name)
		}
		loaded[i], loadErr[i] = t, err
	}
	var out []TableResult
	err := pgx.BeginTxFunc(ctx, src, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := setSession(ctx, tx); err != nil {
			return err
		}
		for i, name := range tables {
			if loadErr[i] != nil {
				for j, d := range dests {
					out = append(out, TableResult{Table: name, DestinationID: ids[j], Destination: d.Name(), DestinationType: d.Type(),
						Status: StatusError, Error: loadErr[i].Error(), Keys: []KeyDiff{}})
				}
				continue
			}
			out = append(out, Table(ctx, tx, loaded[i], dests, ids, opts)...)
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("verify against the source snapshot: %w", err)
	}
	return out, nil
}

// Limits of the backfills Backfills asks for.
const (
	maxInValues     = 1000 // pkg/snapshot's bound on an in filter
	maxKeyBackfills = 100  // jobs for a composite key (one per key)
)

// Backfills are the backfill jobs that re-send the missing and differing
// rows of r to its destination: with a one-column key, jobs filtered on
// "key in (…)" with at most 1000 keys each; with a composite key (at most
// five columns), one job per key filtered on each column's equality, at
// most 100. Extra rows are not in the source, so no backfill can remove
// them: they are left out (docs/verify.md). A table whose keys were
// truncated (Options.MaxKeys) gets the jobs for the keys kept.
func Backfills(pipelineID int64, r TableResult) ([]configstore.BackfillInput, error) {
	var keys [][]string
	for _, k := range r.Keys {
		if k.Diff != Extra {
			keys = append(keys, k.Key)
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	base := configstore.BackfillInput{PipelineID: pipelineID, Table: r.Table, Kind: configstore.JobKindBackfill,
		DestinationIDs: []int64{r.DestinationID}, BatchSize: 10000}
	var out []configstore.BackfillInput
	if len(r.KeyColumns) == 1 {
		for start := 0; start < len(keys); start += maxInValues {
			end := min(start+maxInValues, len(keys))
			vals := make([]string, 0, end-start)
			for _, k := range keys[start:end] {
				vals = append(vals, k[0])
			}
			raw, err := json.Marshal(vals)
			if err != nil {
				return nil, err
			}
			in := base
			in.Filters = []configstore.BackfillFilter{{Column: r.KeyColumns[0], Op: "in", Value: raw}}
			out = append(out, in)
		}
		return out, nil
	}
	if len(r.KeyColumns) > snapshot.MaxFilters {
		return nil, fmt.Errorf("%s has a %d-column key; a backfill takes at most %d filters: backfill the table whole", r.Table, len(r.KeyColumns), snapshot.MaxFilters)
	}
	if len(keys) > maxKeyBackfills {
		return nil, fmt.Errorf("%s: %d differing keys of a composite key would take %d backfill jobs (at most %d): backfill the table whole", r.Table, len(keys), len(keys), maxKeyBackfills)
	}
	for _, k := range keys {
		in := base
		for i, c := range r.KeyColumns {
			raw, err := json.Marshal(k[i])
			if err != nil {
				return nil, err
			}
			in.Filters = append(in.Filters, configstore.BackfillFilter{Column: c, Op: "=", Value: raw})
		}
		out = append(out, in)
	}
	return out, nil
}
