package duckdb

import (
	"context"
	"fmt"

	"github.com/rosettacdc/rosetta/pkg/destquery"
)

var _ destquery.Holder = (*Driver)(nil)

// Path is the destination file this driver writes.
func (d *Driver) Path() string { return d.cfg.Path }

// WithFileReleased lends the file to fn between two batches: it waits for
// a batch being applied to commit (or ctx to end), checkpoints and closes
// the file if it is open, and runs fn while no batch is applied. The next
// Apply reopens the file. It is how this process serves read-only queries
// on the file (pkg/destquery) while another process could not open it.
func (d *Driver) WithFileReleased(ctx context.Context, fn func(context.Context) error) error {
	locked := make(chan struct{})
	// Owned here: it ends when it has the lock; if ctx ended first, it
	// hands the lock straight back.
	go func() {
		d.mu.Lock()
		close(locked)
	}()
	select {
	case <-locked:
	case <-ctx.Done():
		go func() {
			<-locked
			d.mu.Unlock()
		}()
		return fmt.Errorf("wait for the batch being applied to %s: %w", d.cfg.Path, ctx.Err())
	}
	defer d.mu.Unlock()
	d.stopIdle()
	if err := d.release(); err != nil {
		return err
	}
	return fn(ctx)
}
