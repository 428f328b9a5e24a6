// Package jitter spreads the waits of reconnect and retry loops.
package jitter

import (
	"math/rand/v2"
	"time"
)

// Spread returns a wait drawn uniformly from [d/2, d]. Every capture worker
// and sink runner that lost the same server (a NATS restart, a destination
// back from maintenance) would otherwise retry in lockstep, doubling
// together, and hit it at the same instants; half the backoff is kept so
// the wait still grows with it.
func Spread(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + rand.N(d-half+1)
}
