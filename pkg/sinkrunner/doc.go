// Package sinkrunner is the loop that drives any destination driver from a
// durable JetStream pull consumer: fetch a batch, decode it, collapse it per
// key (pkg/cdc), apply it in one destination transaction, and only then ack.
// When a destination rejects changes for good and a dead-letter queue is
// configured, it isolates them by bisecting the batch, applies the rest, and
// hands exactly the rejected changes to the queue before acking them.
//
// A Runner (runner.go) is a fetcher per consumer (one per partition of the
// source, NewPartitioned), one applier, and a few helpers, one file each:
//
//   - fetch.go, the fetcher: pulls messages in the consumer's priority group
//     (only the pinned sink instance receives a partition's changes; it
//     releases the pin when it stops), acks those addressed to other
//     destinations, decodes the rest into the batch being gathered (every
//     change of a message: version 1 holds one, version 2 the changes of
//     one table from one transaction), and hands a batch to the applier
//     when it holds BatchSize changes, or when the applier is free and
//     BatchWait passed. It reports fetch errors to health.
//   - hold.go, the keeper (holder): every message fetched and not yet
//     settled is held, and marked in progress every KeepAliveEvery so that
//     JetStream does not redeliver it while its batch waits or retries.
//   - apply.go, the applier, on Run's goroutine: applies one batch at a
//     time in delivery order, retrying the same batch with backoff
//     (retryApply) until it commits. With a dead-letter queue a permanent
//     error bisects the batch (isolate) down to the changes that fail on
//     their own; deadletter.go stores those (DeadLetterQueue) and settles
//     invalid changes and undecodable messages.
//   - ack.go, the acker: settles per change and acks a message only when
//     every change of it is durable (a committed Apply, a stored dead
//     letter), and confirms the last ack of a batch in the background;
//     what is not acked when the runner stops is nak'ed.
//   - health.go: reports HEALTHY or ERROR with a reason to a StateReporter
//     (the sink service stores it in the config store), throttled, and
//     never HEALTHY after a successful fetch while the applier is failing.
//
// Between batches the applier also serves Replay (replay.go: dead letters
// applied through the runner's driver), Collect (collect.go: tombstone
// collection under bounds the sink provides), and, when the driver reports
// rows left with unknown columns, complete.go turns them into completion
// backfill jobs. driver.go is the contract a destination implements and the
// classification of its errors; config.go the knobs and their defaults.
//
// Locks: counters (Stats), holder and health each own one mutex and are the
// only users of it; the acker and the isolation state belong to the applier
// alone.
package sinkrunner
