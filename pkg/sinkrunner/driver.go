package sinkrunner

import (
	"context"
	"errors"
	"strings"

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
//     Dead-letter replays rely on this too: an old change replayed after a
//     newer one was applied changes nothing.
//   - An error the same input will always produce (bad data, a constraint
//     the destination enforces, a value the column cannot hold) is wrapped
//     with Permanent; any other error (connection lost, timeout, lock or
//     serialization conflict, destination down) is transient and the runner
//     retries the same batch with backoff. A permanent error may be caused by
//     a single change of the batch: the runner then re-applies parts of the
//     batch, each in its own Apply, to find it.
//   - Apply is never called concurrently; Close is called once, after the
//     last Apply returned.
type Driver interface {
	Apply(ctx context.Context, batches []cdc.TableBatch) error
	Close() error
}

// PermanentError marks an error that retrying the same batch cannot fix.
// Drivers wrap with Permanent (or PermanentClass); callers detect it with
// errors.As or IsPermanent.
type PermanentError struct {
	Err error
	// Class is a short machine-readable reason ("constraint_violation");
	// empty lets ErrorClass derive one from the error.
	Class string
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

// PermanentClass wraps err as a PermanentError of the given class (one of
// the Class… constants, or a driver's own short snake_case word); nil stays
// nil.
func PermanentClass(class string, err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err, Class: class}
}

// IsPermanent reports whether err is, or wraps, a PermanentError.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// Error classes recorded with dead-lettered changes.
const (
	// ClassConstraint: the destination refused the row (SQLSTATE class 23:
	// check, not-null, unique, foreign key, exclusion).
	ClassConstraint = "constraint_violation"
	// ClassTooLong: a value is too long for its column (22001).
	ClassTooLong = "value_too_long"
	// ClassOutOfRange: a value is out of range for its column's type
	// (22003 numeric, 22008 datetime, 22020 length-type field).
	ClassOutOfRange = "out_of_range"
	// ClassEncoding: a value is not valid in the destination's encoding
	// (22021, 22P05).
	ClassEncoding = "invalid_encoding"
	// ClassInvalidValue: any other data exception (SQLSTATE class 22).
	ClassInvalidValue = "invalid_value"
	// ClassUndecodable: the message is not a valid change event.
	ClassUndecodable = "undecodable"
	// ClassPermanent: a permanent error without a finer class.
	ClassPermanent = "permanent"
	// ClassTransient: an error worth retrying.
	ClassTransient = "transient"
)

// ErrorClass names the kind of err for operators and DLQ entries: the Class
// of a PermanentError when set, else one derived from an SQLSTATE found in
// the chain (any error with a SQLState() string method, such as pgx's
// *pgconn.PgError), else ClassPermanent or ClassTransient.
func ErrorClass(err error) string {
	var p *PermanentError
	permanent := errors.As(err, &p)
	if permanent && p.Class != "" {
		return p.Class
	}
	var st interface{ SQLState() string }
	if errors.As(err, &st) {
		if c := sqlStateClass(st.SQLState()); c != "" {
			return c
		}
	}
	if permanent {
		return ClassPermanent
	}
	return ClassTransient
}

// PermanentSQLState reports whether an SQLSTATE says the destination
// rejects the data itself, so the same batch fails every time: class 22
// (data exception), 23 (integrity constraint violation) and 54 (a limit
// such as a key value too large for the primary key's index, "index row
// size … exceeds btree maximum"). Connection errors, timeouts,
// serialization failures, deadlocks and the rest are worth retrying.
// ErrorClass names the class of such an error.
func PermanentSQLState(code string) bool {
	if len(code) != 5 {
		return false
	}
	switch code[:2] {
	case "22", "23", "54":
		return true
	}
	return false
}

// sqlStateClass maps the SQLSTATEs of data a destination rejects; other
// codes return "".
func sqlStateClass(code string) string {
	code = strings.ToUpper(code)
	switch code {
	case "22001":
		return ClassTooLong
	case "22003", "22008", "22020":
		return ClassOutOfRange
	case "22021", "22P05":
		return ClassEncoding
	}
	switch {
	case strings.HasPrefix(code, "23"):
		return ClassConstraint
	case strings.HasPrefix(code, "22"):
		return ClassInvalidValue
	}
	return ""
}
