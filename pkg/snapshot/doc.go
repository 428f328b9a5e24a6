// Package snapshot reads the rows of a source table consistently with the
// change stream and turns them into op "r" changes, for initial snapshots
// and backfills (docs/backfill.md).
//
// A batch is read inside a transaction that imports the snapshot exported
// by CREATE_REPLICATION_SLOT ... TEMPORARY LOGICAL pgoutput
// (EXPORT_SNAPSHOT). Its rows are published with commit_lsn = the slot's
// consistent point and seq 0. Every transaction that committed before the
// consistent point is visible in the snapshot and has a smaller version;
// every transaction that commits after it is invisible and has a larger
// version (its commit LSN is past the consistent point, seq >= 1). The
// destinations' version guard therefore lets snapshot rows and live
// changes arrive in any order and converge: a snapshot row never
// overwrites a newer change, nor resurrects a row whose delete (tombstone)
// is newer.
//
// Values are read in PostgreSQL's text format under the session settings
// capture pins, and encoded by pkg/pgrepl's decoder (fed a relation and
// insert messages built from the rows), so an "r" change carries exactly
// the key, after and columns capture would emit for the same row.
package snapshot
