package cdctest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rosettacdc/rosetta/pkg/configstore"
)

// States records the destination states a sink runner reports, for tests
// that run a runner against a real destination.
type States struct {
	mu  sync.Mutex
	all []configstore.DestinationState
}

// SetDestinationState records st.
func (s *States) SetDestinationState(_ context.Context, st configstore.DestinationState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.all = append(s.all, st)
	return nil
}

// Last is the latest report, or the zero state.
func (s *States) Last() configstore.DestinationState {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.all) == 0 {
		return configstore.DestinationState{}
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
func (s *States) All() []configstore.DestinationState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]configstore.DestinationState(nil), s.all...)
}
