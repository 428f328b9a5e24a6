package api

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/configstore"
)

// deletePipeline is DELETE /pipelines/{id}. A pipeline's dead-letter
// queues (row data) go with it, but only when asked: while they hold
// entries the delete answers 409 with their count and how to confirm
// (?discard_dead_letters=true), so that nobody loses rejected changes by
// deleting a pipeline to recreate it. A queue another pipeline shares
// (same source and destination) is neither counted nor deleted.
func (s *Server) deletePipeline(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	discard := false
	switch raw := c.Query("discard_dead_letters"); raw {
	case "", "false":
	case "true":
		discard = true
	default:
		return badRequest("discard_dead_letters", "discard_dead_letters=%q: want true or false", raw)
	}
	ctx := c.UserContext()
	p, err := s.store.GetPipeline(ctx, id)
	if errors.Is(err, configstore.ErrNotFound) {
		return notFound("pipeline %d does not exist", id)
	}
	if err != nil {
		return err
	}
	var own []int64 // destinations whose queues only p uses
	if s.dlq != nil {
		if own, err = s.ownQueues(ctx, p); err != nil {
			return err
		}
		held, detail, err := s.deadLetterCount(ctx, p.SourceID, own)
		if err != nil {
			return &apiError{status: fiber.StatusServiceUnavailable,
				msg: fmt.Sprintf("cannot tell whether pipeline %d's dead-letter queues hold entries, so it is not deleted: %v; retry when Redis answers", id, err)}
		}
		if held > 0 && !discard {
			return &apiError{status: fiber.StatusConflict, field: "discard_dead_letters",
				msg: fmt.Sprintf("pipeline %d's dead-letter queues hold %s (%s); recover or discard them first, or delete the pipeline and its dead letters with DELETE /api/v1/pipelines/%d?discard_dead_letters=true",
					id, entries(held), detail, id)}
		}
	}
	var discarded int64
	if discard && s.dlq != nil {
		// Before the pipeline: if the delete then fails, the pipeline is
		// still there to see it, and its dead letters were confirmed gone.
		n, err := s.discardQueues(ctx, p.SourceID, own)
		discarded += n
		if err != nil {
			return dlqUnavailable(err)
		}
	}
	err = s.store.DeletePipeline(ctx, id)
	if errors.Is(err, configstore.ErrNotFound) {
		return notFound("pipeline %d does not exist", id)
	}
	if err != nil {
		return err
	}
	s.publish(c, contracts.KindPipeline, id, contracts.ActionDeleted)
	if discard && s.dlq != nil {
		// Again: the sink may have dead-lettered a change of the batch it
		// was applying until it learnt of the delete.
		n, err := s.discardQueues(ctx, p.SourceID, own)
		discarded += n
		if err != nil {
			s.log.Warn("pipeline deleted; deleting the dead letters written meanwhile failed", "pipeline", id, "error", err)
		}
		s.log.Info("pipeline deleted with its dead-letter queues", "pipeline", id, "source", p.SourceID, "destinations", own, "discarded", discarded)
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// ownQueues lists the destinations of p whose queues (keyed by source
// and destination) no other pipeline uses.
func (s *Server) ownQueues(ctx context.Context, p configstore.Pipeline) ([]int64, error) {
	all, err := s.store.ListAllPipelines(ctx)
	if err != nil {
		return nil, err
	}
	shared := map[int64]bool{}
	for _, o := range all {
		if o.ID == p.ID || o.SourceID != p.SourceID {
			continue
		}
		for _, d := range o.DestinationIDs {
			shared[d] = true
		}
	}
	var own []int64
	for _, d := range p.DestinationIDs {
		if !shared[d] {
			own = append(own, d)
		}
	}
	return own, nil
}

// deadLetterCount sums the entries of a source's queues for dests, with a
// per-destination breakdown for the message.
func (s *Server) deadLetterCount(ctx context.Context, sourceID int64, dests []int64) (int64, string, error) {
	var total int64
	var parts []string
	for _, d := range dests {
		st, err := s.dlq.Stats(ctx, sourceID, d)
		if err != nil {
			return 0, "", err
		}
		var n int64
		for _, t := range st {
			n += t.Depth
		}
		if n > 0 {
			parts = append(parts, fmt.Sprintf("destination %d: %d", d, n))
		}
		total += n
	}
	return total, strings.Join(parts, ", "), nil
}

// discardQueues deletes a source's queues for dests: every table's stream,
// its msg_id index and the destination's table set.
func (s *Server) discardQueues(ctx context.Context, sourceID int64, dests []int64) (int64, error) {
	var total int64
	for _, d := range dests {
		n, err := s.dlq.Discard(ctx, sourceID, d, "")
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// entries is "1 entry" or "n entries".
func entries(n int64) string {
	if n == 1 {
		return "1 entry"
	}
	return fmt.Sprintf("%d entries", n)
}
