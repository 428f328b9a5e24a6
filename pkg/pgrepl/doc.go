// Package pgrepl is Rosetta's use of PostgreSQL logical replication with the
// pgoutput plugin, split into pure decoding and I/O at the edges:
//
//   - Decoder turns pgoutput messages (protocol version 1, text mode) into
//     contracts.Change values. It does no I/O itself; the catalog lookups it
//     needs when a relation is (re)described go through a Resolver, of which
//     CatalogResolver is the PostgreSQL implementation.
//   - EnsurePublication, EnsureSlot, CheckWALLevel and ReadSlot manage a
//     source's publication and replication slot over a normal connection.
//   - StartReplication, ReceiveMessage and SendStatus drive a replication
//     connection (replication=database) in copy-both mode.
//     StartReplicationWith can ask PostgreSQL 14+ to stream in-progress
//     transactions (protocol version 2); the caller holds their messages,
//     in version 1 shape, until the commit and then hands them to the
//     Decoder like a whole transaction.
//
// The package knows nothing of NATS or of Rosetta's services; the capture
// service composes it with JetStream.
package pgrepl
