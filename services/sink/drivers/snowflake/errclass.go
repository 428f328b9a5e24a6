package snowflake

import (
	"errors"

	sf "github.com/snowflakedb/gosnowflake"

	"github.com/rosettacdc/rosetta/pkg/sinkrunner"
)

// errAction is what the driver does after a Snowflake error.
type errAction int

const (
	// retry the batch on the same session (the default for numbers not
	// in errorRules).
	actRetry errAction = iota
	// reconnect: the session is gone; log in again and recreate the
	// staging tables, then retry.
	actReconnect
	// dead-letter: the same rows will always fail (sinkrunner.Permanent).
	actPermanent
)

// errRule is the decision for one Snowflake error number.
type errRule struct {
	action errAction
	class  string // dead-letter class, for actPermanent
}

// errorRules decides by Snowflake's error number, never by SQLSTATE class:
// Snowflake reports infrastructure failures under 22000 (a "data
// exception"), e.g. 091003 and 090073, while its real data errors carry
// their own numbers. A number not listed is retried: a stalled sink shows
// on the destination's health, a wrongly dead-lettered row is silently
// missing from the destination.
var errorRules = map[int]errRule{
	// The session is gone: keeping it would fail every later batch.
	390111: {action: actReconnect}, // session no longer exists
	390112: {action: actReconnect}, // session token expired (gosnowflake renews it; seen only if renewal failed)
	390114: {action: actReconnect}, // authentication token expired: log in again

	// Transient: the batch succeeds once the condition passes.
	603:   {action: actRetry}, // internal error
	604:   {action: actRetry}, // statement canceled
	606:   {action: actRetry}, // no active warehouse (suspended, dropped, or not granted yet)
	625:   {action: actRetry}, // transaction conflict
	630:   {action: actRetry}, // statement or warehouse timeout (57014)
	90073: {action: actRetry}, // resource monitor quota exhausted (22000)
	90084: {action: actRetry}, // cloud storage unavailable (22000)
	91003: {action: actRetry}, // failure using stage area (22000)

	// Data Snowflake rejects: the rows go to the dead-letter queue.
	100035: {actPermanent, sinkrunner.ClassInvalidValue}, // timestamp not recognized
	100037: {actPermanent, sinkrunner.ClassInvalidValue}, // boolean not recognized
	100038: {actPermanent, sinkrunner.ClassInvalidValue}, // numeric value not recognized
	100039: {actPermanent, sinkrunner.ClassOutOfRange},   // numeric value out of range (22003)
	100040: {actPermanent, sinkrunner.ClassInvalidValue}, // date not recognized
	100046: {actPermanent, sinkrunner.ClassOutOfRange},   // number out of representable range
	100069: {actPermanent, sinkrunner.ClassInvalidValue}, // error parsing JSON (22P02)
	100071: {actPermanent, sinkrunner.ClassInvalidValue}, // failed to cast variant value
	100072: {actPermanent, sinkrunner.ClassConstraint},   // NULL into a NOT NULL column (22000)
	100078: {actPermanent, sinkrunner.ClassTooLong},      // string too long (22000, never 22001)
	100082: {actPermanent, sinkrunner.ClassTooLong},      // VARIANT or LOB over 16 MB
	// Duplicate row detected during DML: a target or tombstone row the
	// staged key matches twice (rows inserted by hand). The MERGE
	// de-duplicates what Rosetta writes, so retrying can never succeed:
	// the runner isolates the rows that hit it instead of looping.
	100090: {actPermanent, sinkrunner.ClassConstraint},
}

// ruleFor is the rule of err's Snowflake error number; ok is false for
// errors that are not Snowflake's or whose number is not listed.
func ruleFor(err error) (errRule, bool) {
	var se *sf.SnowflakeError
	if !errors.As(err, &se) {
		return errRule{}, false
	}
	r, ok := errorRules[se.Number]
	return r, ok
}

// classify marks errors the same batch will always hit as permanent, with
// their dead-letter class (errorRules). Everything else stays as it is:
// retried by the runner.
func classify(err error) error {
	if err == nil || sinkrunner.IsPermanent(err) {
		return err
	}
	if r, ok := ruleFor(err); ok && r.action == actPermanent {
		return sinkrunner.PermanentClass(r.class, err)
	}
	return err
}

// sessionLost reports whether err means the session is gone: the driver
// must log in again rather than retry on it.
func sessionLost(err error) bool {
	r, ok := ruleFor(err)
	return ok && r.action == actReconnect
}
