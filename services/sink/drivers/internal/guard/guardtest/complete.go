package guardtest

import (
	"fmt"
	"strings"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/guard"
)

// Reports gathers the keys a driver (or the specification) reported for
// completion after each batch, per table: what the sink runner turns into
// completion backfills.
type Reports map[string]map[string]bool // table -> key text -> reported

// Add records keys of table (single-column keys: the generator's id).
func (r Reports) Add(table string, keys [][]string) {
	for _, k := range keys {
		if r[table] == nil {
			r[table] = map[string]bool{}
		}
		r[table][k[0]] = true
	}
}

// AddIncomplete records what a driver reported after a batch
// (sinkrunner.IncompleteReporter), its tables named schema.table.
func (r Reports) AddIncomplete(rows []sinkrunner.IncompleteRows) {
	for _, inc := range rows {
		_, table, _ := strings.Cut(inc.Table, ".")
		r.Add(table, inc.Keys)
	}
}

// Completion returns what the completion backfills of the reported keys
// publish once every change was delivered: for each reported key that
// exists at the source, a snapshot read of its row at the source, versioned
// after every change (a backfill's consistent point follows the changes
// committed before it). Keys gone from the source publish nothing: their
// delete reached the destination like any change.
func (s *Scenario) Completion(reported Reports) []contracts.Change {
	var out []contracts.Change
	seq := int64(0)
	for _, table := range s.Tables {
		for key := range reported[table] {
			row, ok := s.Truth[table][key]
			if !ok {
				continue
			}
			src := contracts.Source{SourceID: 1, Schema: s.Schema, Table: table, CommitLSN: fmt.Sprintf("%X/0", 1<<20), Seq: seq, Snapshot: true}
			seq++
			out = append(out, rowChange(contracts.OpRead, src, key, "", row, nil))
		}
	}
	return out
}

// SpecReports is Spec that also returns the keys the specification
// reports for completion (guard.Table.ToComplete) after each batch.
func SpecReports(d Delivery, tables []string) (map[string]*guard.Table, Reports, error) {
	out := map[string]*guard.Table{}
	for _, t := range tables {
		out[t] = guard.NewTable(ValueColumns)
	}
	reports := Reports{}
	for i, b := range d.Batches {
		tbs, err := cdc.Collapse(b)
		if err != nil {
			return nil, nil, fmt.Errorf("collapse batch %d: %w", i, err)
		}
		for _, tb := range tbs {
			t := out[tb.Table.Name]
			t.Apply(tb)
			reports.Add(tb.Table.Name, t.ToComplete(tb))
		}
	}
	return out, reports, nil
}

// CompletionBatches is Completion collapsed into the batches a driver
// applies, and the number of rows it re-reads.
func (s *Scenario) CompletionBatches(reported Reports) ([]cdc.TableBatch, int, error) {
	changes := s.Completion(reported)
	tbs, err := cdc.Collapse(changes)
	if err != nil {
		return nil, 0, fmt.Errorf("collapse completion: %w", err)
	}
	return tbs, len(changes), nil
}

// Complete applies the completion of the reported keys to the
// specification's tables.
func (s *Scenario) Complete(tables map[string]*guard.Table, reported Reports) error {
	tbs, _, err := s.CompletionBatches(reported)
	if err != nil {
		return err
	}
	for _, tb := range tbs {
		tables[tb.Table.Name].Apply(tb)
	}
	return nil
}
