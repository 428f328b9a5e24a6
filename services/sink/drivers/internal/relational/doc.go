// Package relational holds what the SQL destination drivers (PostgreSQL
// and DuckDB, which keep the version guard in tables of their own) share
// beyond the guard's rule itself (package guard): the table-shape cache
// and the planning that makes a destination table take a batch (Ensure,
// through each driver's Dialect), and the names of their bookkeeping
// objects. It is where the shared apply engine grows, one
// concept at a time, instead of a copy per driver.
package relational
