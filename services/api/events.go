package api

import (
	"context"
	"errors"

	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
	"github.com/rosettacdc/rosetta/pkg/natsx"
)

// publish announces a committed change. It is called only after the
// config DB commit, and a failure does not fail the request: the change is
// already durable, and every service re-reads the config DB on start and
// on a timer (settings.ReconcileInterval), so a lost event only delays
// convergence. The failure is logged.
func (s *Server) publish(c *fiber.Ctx, kind contracts.ConfigKind, id int64, action contracts.ConfigAction) {
	// The change is committed: announce it even if the client has gone.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.UserContext()), s.cfg.PublishTimeout)
	defer cancel()
	ev := contracts.ConfigEvent{Kind: kind, ID: id, Action: action}
	err := natsx.PublishConfigEvent(ctx, s.js, ev)
	if errors.Is(err, jetstream.ErrNoStreamResponse) {
		// The stream is missing (first start, or deleted): create it and
		// try once more.
		if err = natsx.EnsureConfigStream(ctx, s.js); err == nil {
			err = natsx.PublishConfigEvent(ctx, s.js, ev)
		}
	}
	if err != nil {
		s.log.Warn("config event not published; services will pick the change up on their next reconcile",
			"kind", string(kind), "id", id, "action", string(action), "error", err)
	}
}
