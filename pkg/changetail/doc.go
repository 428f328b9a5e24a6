// Package changetail is the one place that reads a source's live changes
// for people to look at: `rosetta tail` prints them, the API streams them to
// the console (GET /pipelines/{id}/tail). It builds the ephemeral ordered
// consumer both use (consumer.go), splits each message into its changes
// (a message holds one change in envelope version 1, the changes of one
// table of one transaction in version 2) and formats every change as a
// line or as an event (format.go), and escapes what comes from the source
// before anyone sees it (escape.go). What a reader sees is changes, not
// messages: one line or event per change, with the message's stream
// sequence and the change's index in it (Pos).
package changetail
