package natsx

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestRetryJS(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		errs      []error // what each attempt returns; then nil
		wantCalls int
		wantErr   error
	}{
		{"answered", nil, 1, nil},
		{"unanswered then answered", []error{context.DeadlineExceeded, fmt.Errorf("look: %w", nats.ErrTimeout), nats.ErrNoResponders}, 4, nil},
		{"an error answer is final", []error{jetstream.ErrStreamNotFound}, 1, jetstream.ErrStreamNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			calls := 0
			v, err := retryJS(context.Background(), func(ctx context.Context) (int, error) {
				if _, ok := ctx.Deadline(); !ok {
					t.Error("attempt without a deadline of its own")
				}
				calls++
				if calls <= len(tt.errs) {
					return 0, tt.errs[calls-1]
				}
				return 7, nil
			})
			if calls != tt.wantCalls || !errors.Is(err, tt.wantErr) || (err == nil && v != 7) {
				t.Fatalf("retryJS = %d, %v after %d calls; want %v after %d", v, err, calls, tt.wantErr, tt.wantCalls)
			}
		})
	}
	// The caller's deadline ends the retries.
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := retryJS(ctx, func(context.Context) (int, error) { return 0, nats.ErrNoResponders })
	if !errors.Is(err, nats.ErrNoResponders) || time.Since(start) > 5*time.Second {
		t.Fatalf("retryJS past the caller's deadline = %v after %v", err, time.Since(start))
	}
}

// unansweredOnceJS leaves the first consumer request unanswered.
type unansweredOnceJS struct {
	jetstream.JetStream
	calls int
}

func (f *unansweredOnceJS) CreateOrUpdateConsumer(context.Context, string, jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	f.calls++
	if f.calls == 1 {
		return nil, context.DeadlineExceeded
	}
	return nil, nil
}

func TestEnsurePipelineConsumersAsksAgain(t *testing.T) {
	t.Parallel()
	js := &unansweredOnceJS{}
	if err := EnsurePipelineConsumers(context.Background(), js, 1, 2, 3, []Table{{Schema: "public", Name: "t"}}, 2); err != nil {
		t.Fatalf("EnsurePipelineConsumers after an unanswered request: %v", err)
	}
	if js.calls != 3 {
		t.Fatalf("%d consumer requests, want 3 (the first partition's asked again)", js.calls)
	}
}
