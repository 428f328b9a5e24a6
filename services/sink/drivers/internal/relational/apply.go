package relational

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/rosettacdc/rosetta/pkg/cdc"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
	"github.com/rosettacdc/rosetta/services/sink/drivers/internal/guard"
)

// What every driver's Apply and factory share, Snowflake's included.

// Build is the body of a driver's factory (services/sink DriverFactory):
// it parses and checks the destination's JSON config with parse and
// builds the driver with build, which does no I/O, so that a destination
// that is down shows up as the runner's retried Apply errors. Its errors
// are parse's, which hold no secrets.
func Build[C any, D sinkrunner.Driver](config json.RawMessage, log *slog.Logger, parse func(json.RawMessage) (C, error),
	build func(C, *slog.Logger) D) (sinkrunner.Driver, error) {
	cfg, err := parse(config)
	if err != nil {
		return nil, err
	}
	return build(cfg, log), nil
}

// Writes returns the batches of an Apply that change the destination:
// those with rows or a truncate. An Apply left with none has nothing to
// write and opens no transaction.
func Writes(batches []cdc.TableBatch) []cdc.TableBatch {
	var work []cdc.TableBatch
	for _, b := range batches {
		if len(b.Rows) > 0 || b.Truncate != nil {
			work = append(work, b)
		}
	}
	return work
}

// CollectChunk is the most tombstones one DELETE of a collection removes:
// a backlog of millions is collected in short transactions that hold no
// lock for long and never block an Apply for more than one chunk.
const CollectChunk = 10000

// CollectChunks runs del, which deletes at most CollectChunk tombstones
// older than the collect floor and returns how many it deleted, until one
// run deletes fewer. It returns how many went, also when del fails.
func CollectChunks(ctx context.Context, del func(context.Context) (int64, error)) (int64, error) {
	var collected int64
	for {
		n, err := del(ctx)
		if err != nil {
			return collected, err
		}
		collected += n
		if n < CollectChunk {
			return collected, nil
		}
	}
}

// Report gathers the rows an Apply leaves incomplete, for the driver's
// Incomplete (sinkrunner.IncompleteReporter): found while the Apply runs,
// handed over only once it committed, so that a failed Apply reports
// nothing. The driver's mutex guards it.
type Report struct {
	found, incomplete []sinkrunner.IncompleteRows
}

// Begin starts an Apply of batches: it forgets what the last Apply
// reported and returns the batches that write (Writes).
func (r *Report) Begin(batches []cdc.TableBatch) []cdc.TableBatch {
	r.found, r.incomplete = nil, nil
	return Writes(batches)
}

// Found adds rows the Apply in progress leaves with unknown columns (none:
// nothing to add).
func (r *Report) Found(rows sinkrunner.IncompleteRows) {
	if len(rows.Keys) > 0 {
		r.found = append(r.found, rows)
	}
}

// unknownLogged is how many rows of one table an Apply logs with their
// unknown columns; the rest are only reported.
const unknownLogged = 10

// Unknown adds key to found, a row the Apply leaves with unknown columns,
// and logs the first few: logKey and cols as the driver's query reads
// them.
func Unknown(log *slog.Logger, found *sinkrunner.IncompleteRows, table string, key []string, logKey, cols any) {
	found.Keys = append(found.Keys, key)
	if len(found.Keys) > unknownLogged {
		return
	}
	log.Warn("row has columns no change has provided yet: an update left them unchanged (TOASTed) and no older change of "+
		"the row has arrived; they stay NULL until one does, or a backfill of the key completes them",
		"table", table, "key", logKey, "columns", cols)
}

// Moved adds the rows of b whose key changed: they are re-read from the
// source whatever they hold (guard.ReportMoved).
func (r *Report) Moved(b cdc.TableBatch) { r.found = guard.ReportMoved(r.found, b) }

// Committed hands what the Apply found over to Incomplete, once it
// committed.
func (r *Report) Committed() { r.incomplete, r.found = r.found, nil }

// Incomplete returns the rows the last committed Apply left incomplete.
func (r *Report) Incomplete() []sinkrunner.IncompleteRows { return r.incomplete }
