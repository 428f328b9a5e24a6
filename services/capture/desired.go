package capture

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/natsx"
)

// sourceSpec is what one worker captures: the source and, derived from all
// of its pipelines, the tables to publish and the consumers to keep.
type sourceSpec struct {
	Source configstore.Source
	// Tables is the union of the tables of every pipeline of the source,
	// whatever its status: a paused pipeline's consumers keep buffering.
	Tables    []natsx.Table
	Consumers []consumerSpec
}

// consumerSpec is the durable consumer of one (pipeline, destination).
type consumerSpec struct {
	PipelineID    int64
	DestinationID int64
	Tables        []natsx.Table
}

// desiredSources computes the workers that should run: one for every
// source with at least one pipeline in status START. Table names that do
// not parse are left out and reported in problems (the API validates them,
// so this only guards against a hand-edited config DB).
func desiredSources(sources []configstore.Source, pipelines []configstore.Pipeline) (map[int64]sourceSpec, []error) {
	var problems []error
	bySource := make(map[int64][]configstore.Pipeline)
	for _, p := range pipelines {
		bySource[p.SourceID] = append(bySource[p.SourceID], p)
	}
	out := make(map[int64]sourceSpec)
	for _, s := range sources {
		ps := bySource[s.ID]
		if !slices.ContainsFunc(ps, func(p configstore.Pipeline) bool { return p.Status == configstore.StatusStart }) {
			continue
		}
		spec := sourceSpec{Source: s}
		for _, p := range ps {
			var tables []natsx.Table
			for _, name := range p.Tables {
				t, err := parseTable(name)
				if err != nil {
					problems = append(problems, fmt.Errorf("pipeline %d: %w", p.ID, err))
					continue
				}
				tables = append(tables, t)
			}
			tables = sortTables(tables)
			spec.Tables = append(spec.Tables, tables...)
			if len(tables) == 0 {
				continue
			}
			for _, d := range p.DestinationIDs {
				spec.Consumers = append(spec.Consumers, consumerSpec{PipelineID: p.ID, DestinationID: d, Tables: tables})
			}
		}
		spec.Tables = sortTables(spec.Tables)
		slices.SortFunc(spec.Consumers, func(a, b consumerSpec) int {
			if c := cmp.Compare(a.PipelineID, b.PipelineID); c != 0 {
				return c
			}
			return cmp.Compare(a.DestinationID, b.DestinationID)
		})
		out[s.ID] = spec
	}
	return out, problems
}

// parseTable splits "schema.table" at its first dot, the rule the API
// validates names with (schemas hold no dots).
func parseTable(name string) (natsx.Table, error) {
	schema, table, ok := strings.Cut(name, ".")
	if !ok || schema == "" || table == "" {
		return natsx.Table{}, fmt.Errorf("table %q is not schema.table", name)
	}
	return natsx.Table{Schema: schema, Name: table}, nil
}

func sortTables(ts []natsx.Table) []natsx.Table {
	slices.SortFunc(ts, func(a, b natsx.Table) int {
		if c := strings.Compare(a.Schema, b.Schema); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return slices.Compact(ts)
}

// sameConnection reports whether a and b are captured through the same
// connection, slot and publication; a change to any of them restarts the
// source's worker, while table changes are applied to the running one.
func sameConnection(a, b configstore.Source) bool {
	return a.Host == b.Host && a.Port == b.Port && a.Database == b.Database && a.User == b.User &&
		a.Password == b.Password && a.Security() == b.Security() && a.Slot == b.Slot && a.Publication == b.Publication
}

// sameTables reports whether two specs publish the same tables to the same
// consumers.
func sameTables(a, b sourceSpec) bool {
	return a.Source.Partitions == b.Source.Partitions && slices.Equal(a.Tables, b.Tables) && slices.EqualFunc(a.Consumers, b.Consumers, func(x, y consumerSpec) bool {
		return x.PipelineID == y.PipelineID && x.DestinationID == y.DestinationID && slices.Equal(x.Tables, y.Tables)
	})
}
