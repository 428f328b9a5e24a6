// Package migrations holds the config database schema as plain SQL files,
// applied in order by configstore.Store.Migrate. A file is named
// NNNN_description.sql; its number is its version. Files are never edited
// once released (Migrate refuses a database whose applied file changed):
// changes go into a new file.
package migrations

import "embed"

// FS holds every migration file.
//
//go:embed *.sql
var FS embed.FS
