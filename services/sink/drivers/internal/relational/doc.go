// Package relational holds what the SQL destination drivers share beyond
// the guard's rule itself (package guard), so that each driver supplies a
// small dialect instead of a copy of the logic:
//
//   - the table-shape cache and the planning that makes a destination
//     table take a batch (Ensure), run through a driver's Dialect;
//   - the version guard's statements, their DDL, the column-version
//     expressions and the evolution statements (widen, rename, drop),
//     generated once per table shape in the spelling of a driver's Syntax
//     (PostgreSQL and DuckDB, which stage a batch and apply it with these
//     statements);
//   - the names Rosetta reserves in a destination and the tombstone
//     tables' names;
//   - what every driver's factory and Apply share, Snowflake's included:
//     Build, Writes, the Report of incomplete rows and the chunked
//     collection of tombstones.
package relational
