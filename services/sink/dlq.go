package sink

import (
	"context"

	"github.com/rosettacdc/rosetta/pkg/dlq"
	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
)

// deadLetters stores a runner's dead letters in the Redis queue. Add
// returns nil only once Redis executed the write and is idempotent per
// MsgID (dlq.Queue.Add), which is the contract sinkrunner acks on.
type deadLetters struct{ q *dlq.Queue }

var _ sinkrunner.DeadLetterQueue = deadLetters{}

func (d deadLetters) Add(ctx context.Context, l sinkrunner.DeadLetter) error {
	text := ""
	if l.Err != nil {
		// Driver errors never hold secrets (see DriverFactory).
		text = l.Err.Error()
	}
	_, _, err := d.q.Add(ctx, dlq.Entry{
		SourceID:      l.SourceID,
		DestinationID: l.DestinationID,
		PipelineID:    l.PipelineID,
		Table:         l.Table,
		MsgID:         l.MsgID,
		Change:        l.Body,
		ErrorClass:    l.Class,
		Error:         text,
		Attempts:      1,
		FirstFailedAt: l.FailedAt,
		LastFailedAt:  l.FailedAt,
		Stream:        l.Stream,
		StreamSeq:     l.StreamSeq,
		Subject:       l.Subject,
	})
	return err
}
