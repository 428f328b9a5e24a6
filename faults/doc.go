// Package faults holds Rosetta's fault-injection suite (tests only): real
// rosetta api, capture and sink processes, an external nats-server, real
// PostgreSQL clusters and Redis; each test runs a continuous write workload,
// injects one fault (SIGKILL, SIGTERM, SIGSTOP, a NATS or PostgreSQL crash,
// a destination outage) and asserts, once everything drained, that every
// destination equals its source. See docs/guarantees.md
// (what each test shows) and docs/faults.md (how to run them).
package faults
