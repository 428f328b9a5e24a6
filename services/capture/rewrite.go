package capture

import (
	"context"
	"slices"

	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/pgrepl"
)

// backfillUnsent acts on tables the decoder found re-described with a new
// column whose existing rows hold values never replicated (a volatile
// default, an identity column: pgrepl.UnsentValues). With
// Config.BackfillOnRewrite it creates, for each pipeline of spec that
// holds the table, a backfill job of that table; otherwise it only warns.
//
// No ordering with the transaction's publishes is needed: the relation
// message comes after the ALTER committed, a backfill reads the table as
// it is when it runs, and destinations keep the newest version of a row
// whichever of a snapshot row and a change arrives last. A job that cannot
// be created is logged and capture goes on: the remedy is the same manual
// backfill as before.
func (w *worker) backfillUnsent(ctx context.Context, spec sourceSpec, unsent []pgrepl.UnsentValues) {
	for _, u := range unsent {
		table := u.Schema + "." + u.Table
		pipelines := pipelinesOf(spec, natsx.Table{Schema: u.Schema, Name: u.Table})
		if !w.cfg.BackfillOnRewrite {
			w.log.Warn("columns added with values for existing rows that logical replication does not send; destinations hold NULL there until the rows change or the table is backfilled (automatic backfill is off)",
				"table", table, "columns", u.Columns, "pipelines", pipelines)
			continue
		}
		var jobs []int64
		for _, p := range pipelines {
			j, err := w.store.CreateBackfillJob(ctx, configstore.BackfillInput{PipelineID: p, Table: table, Kind: configstore.JobKindBackfill})
			if err != nil {
				w.log.Error("create backfill job for columns added with unsent values; backfill the table by hand",
					"table", table, "columns", u.Columns, "pipeline", p, "error", err)
				continue
			}
			jobs = append(jobs, j.ID)
		}
		w.log.Warn("columns added with values for existing rows that logical replication does not send; backfilling the table",
			"table", table, "columns", u.Columns, "pipelines", pipelines, "jobs", jobs)
	}
}

// pipelinesOf returns the pipelines of spec whose consumers take t, in
// order, each once.
func pipelinesOf(spec sourceSpec, t natsx.Table) []int64 {
	var out []int64
	for _, c := range spec.Consumers {
		if slices.Contains(c.Tables, t) && !slices.Contains(out, c.PipelineID) {
			out = append(out, c.PipelineID)
		}
	}
	return out
}
