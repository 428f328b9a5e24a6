package cdctest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
)

// States records the destination states a sink runner reports, for tests
// that run a runner against a real destination.
type States struct {
	mu  sync.Mutex
	all []sinkrunner.State
}

// SetDestinationState records st.
func (s *States) ReportState(_ context.Context, st sinkrunner.State) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.all = append(s.all, st)
	return nil
}

// Last is the latest report, or the zero state.
func (s *States) Last() sinkrunner.State {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.all) == 0 {
		return sinkrunner.State{}
	}
	return s.all[len(s.all)-1]
}

// WaitFor polls cond until it holds or timeout passes, then fails the test
// naming what it waited for.
func WaitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// All is every report so far, oldest first.
func (s *States) All() []sinkrunner.State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sinkrunner.State(nil), s.all...)
}
