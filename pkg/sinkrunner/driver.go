// Package sinkrunner is the loop that drives any destination driver from a
// durable JetStream pull consumer: fetch a batch, decode it, collapse it per
// key (pkg/cdc), apply it in one destination transaction, and only then ack.
package sinkrunner

import (
	"context"
	"errors"

	"github.com/rosettacdc/rosetta/pkg/cdc"
)

// Driver applies collapsed batches to one destination.
//
// Contract:
//   - Apply applies every TableBatch of one fetch in ONE destination
//     transaction: it returns nil only once that transaction is durably
//     committed, and on error nothing of it is visible. The runner acks the
//     messages of the batch only after a nil return.
//   - Apply is idempotent and version-guarded: a row is written only when
//     the incoming version is newer than the one stored, a delete leaves a
//     record so that an older row arriving later is not resurrected, and a
//     truncate only removes rows older than itself. Redelivering any batch,
//     in any order relative to newer ones, converges to the same state.
//   - An error the same input will always produce (bad data, a constraint
//     the destination enforces) is wrapped with Permanent; any other error
//     is transient and the runner retries the same batch with backoff.
//   - Apply is never called concurrently; Close is called once, after the
//     last Apply returned.
type Driver interface {
	Apply(ctx context.Context, batches []cdc.TableBatch) error
	Close() error
}

// PermanentError marks an error that retrying the same batch cannot fix.
// Drivers wrap with Permanent; callers detect it with errors.As or
// IsPermanent.
type PermanentError struct {
	Err error
}

func (e *PermanentError) Error() string { return "permanent: " + e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err as a PermanentError; nil stays nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err is, or wraps, a PermanentError.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}
