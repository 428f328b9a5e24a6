package natsx

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// jsAttempt bounds one JetStream API request of a provisioning step. A
// request sent while the stream's (or the cluster's meta) leader is being
// elected gets no answer at all, and the next one, once the election is
// over (1–2 s on loopback), does; one request waiting out the caller's
// whole deadline stalled capture for all of it (31 s after the stream
// leader's node was killed, faults NATSCluster).
const jsAttempt = 4 * time.Second

// jsRetryPause is the pause between two attempts.
const jsRetryPause = 250 * time.Millisecond

// retryJS runs op with at most jsAttempt per attempt, again while an
// attempt ends unanswered (its own timeout, or no responders), until op
// answers or ctx ends. Answers, errors included, are returned at once.
func retryJS[T any](ctx context.Context, op func(context.Context) (T, error)) (T, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, jsAttempt)
		v, err := op(actx)
		cancel()
		if err == nil || ctx.Err() != nil || !unanswered(err) {
			return v, err
		}
		t := time.NewTimer(jsRetryPause)
		select {
		case <-ctx.Done():
			t.Stop()
			return v, err
		case <-t.C:
		}
	}
}

// unanswered reports whether err says a request got no answer, rather
// than an answer that is an error.
func unanswered(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}
