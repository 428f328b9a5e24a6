package capture

import (
	"context"

	"github.com/rosettacdc/rosetta/pkg/natsx"
)

// Capture is the one place consumers are provisioned: it creates and
// updates every pipeline destination's consumer before the tables join the
// publication (applyTables), and deletes the consumers no pipeline
// destination has any more (here), so that the stream, with interest
// retention, stops keeping changes for them. Sinks only consume and ack.

// removeStaleConsumers deletes the pipeline consumers on the source's stream
// that no pipeline destination of the source has (one per partition). Only the worker holding
// the slot calls it (after START_REPLICATION succeeded), so a standby's
// older view never deletes a consumer. A consumer missing from spec is
// checked once more against a fresh read of the config store before it is
// deleted: a pipeline created since spec was read keeps its consumer (and
// the changes it already holds). Failures are logged and retried on the
// next session or table change; a stale consumer only costs stream space.
func (w *worker) removeStaleConsumers(ctx context.Context, spec sourceSpec) {
	have, err := natsx.ListPipelineConsumers(ctx, w.js, w.id)
	if err != nil {
		w.log.Warn("list consumers to remove stale ones", "error", err)
		return
	}
	want := map[natsx.PipelineConsumerID]bool{}
	for _, c := range spec.Consumers {
		for _, id := range natsx.PipelineConsumerIDs(c.PipelineID, c.DestinationID, spec.Source.Partitions) {
			want[id] = true
		}
	}
	var stale []natsx.PipelineConsumerID
	for _, id := range have {
		if !want[id] {
			stale = append(stale, id)
		}
	}
	if len(stale) == 0 {
		return
	}
	pipelines, err := w.store.ListAllPipelines(ctx)
	if err != nil {
		w.log.Warn("read pipelines to remove stale consumers", "error", err)
		return
	}
	// Every pipeline destination of this source keeps its consumer,
	// whatever the pipeline's status or tables.
	current := map[natsx.PipelineConsumerID]bool{}
	for _, p := range pipelines {
		if p.SourceID != w.id {
			continue
		}
		for _, d := range p.DestinationIDs {
			for _, id := range natsx.PipelineConsumerIDs(p.ID, d, spec.Source.Partitions) {
				current[id] = true
			}
		}
	}
	for _, id := range stale {
		if current[id] {
			continue
		}
		if err := natsx.DeletePipelineConsumer(ctx, w.js, w.id, id); err != nil {
			w.log.Warn("delete consumer of a removed pipeline destination", "consumer", id.Name(), "error", err)
			continue
		}
		w.log.Info("consumer of a removed pipeline destination deleted", "consumer", id.Name())
	}
}
