// Package changetail is the one place that reads a source's live changes
// for people to look at: `rosetta tail` prints them, the API streams them to
// the console (GET /pipelines/{id}/tail). It builds the ephemeral ordered
// consumer both use (consumer.go), formats a change as a line or as an
// event (format.go), and escapes what comes from the source before anyone
// sees it (escape.go).
package changetail
