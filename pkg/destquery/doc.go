// Package destquery serves read-only SQL on DuckDB destination files through
// the process that holds them.
//
// DuckDB lets one process open a file for writing and, while it does, no
// other process may open it at all. The sink driver holds a destination file
// while it applies batches, so a reader in another process (the API, the
// console, bin/duckquery, rosetta verify) would fail with "Could not set lock
// on file". destquery routes such a read to the holder instead: the holder
// pauses its writes between two batches (sink drivers implement Holder),
// the query runs on the file opened read-only in that process, and the
// writes resume.
//
// Every query is checked and confined the same way wherever it runs:
//   - only one statement, and only a read: DuckDB's own parser decides
//     (json_serialize_sql accepts SELECT, WITH, FROM-first, VALUES, SHOW,
//     DESCRIBE, SUMMARIZE and refuses everything else); ErrNotRead otherwise;
//   - the file is opened with access_mode=READ_ONLY and
//     enable_external_access=false, so a query can neither write, read other
//     files (read_csv, read_parquet, …) nor ATTACH another database;
//   - at most Request.Limit rows are returned (Result.Truncated says more
//     existed) and the query is interrupted after Request.Timeout.
//
// The Go API:
//
//	reg := destquery.NewRegistry(log)           // one per process
//	remove := reg.Add(path, holder)              // a sink driver holding path
//	defer remove()
//	stop, err := reg.Serve(nc)                   // answer other processes over NATS
//	defer stop()
//
//	q := destquery.NewQuerier(reg, nc)           // reg and nc may be nil
//	res, err := q.Query(ctx, path, destquery.Request{SQL: "SELECT count(*) FROM main.t"})
//
// Querier.Query tries, in order: a holder in this process (rosetta dev runs
// the API and the sinks in one process), the holder in another process over
// NATS request/reply on Subject(path) (the sink answers; ErrNoResponders
// means nobody holds the file), and finally the file itself, opened
// read-only here, which works when no process holds it and the file is on
// this machine. Paths are compared after filepath.Abs and Clean: give
// destinations absolute paths when the API and the sinks run in different
// working directories.
//
// A query borrows the file from its writer for its whole duration, so the
// timeout (DefaultTimeout, at most MaxTimeout) also bounds how long the
// destination's writes wait.
package destquery
