package contracts

import (
	"strconv"
	"strings"
)

// DestinationsHeader is the NATS header of a change message addressed to
// some destinations only: a backfill asked for with destination_ids
// publishes its op "r" rows with the ids as decimal numbers separated by
// commas ("3,7"). Rosetta's sinks apply such a message only for a listed
// destination and ack it without applying for the others. A message without
// the header is addressed to every consumer of its subject (every capture
// change, and every snapshot or backfill row not targeted at destinations).
// A tapping program may read the header to tell targeted rows apart.
const DestinationsHeader = "Rosetta-Destinations"

// FormatDestinations is the DestinationsHeader value addressing ids.
func FormatDestinations(ids []int64) string {
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(id, 10))
	}
	return b.String()
}

// AddressedTo reports whether a message whose DestinationsHeader value is
// header is for destinationID. An empty header addresses every destination.
// A header that does not parse also counts as addressed: applying a row a
// destination was not meant to get is harmless under the version guard,
// dropping one it was meant to get is not.
func AddressedTo(header string, destinationID int64) bool {
	if header == "" {
		return true
	}
	for tok := range strings.SplitSeq(header, ",") {
		id, err := strconv.ParseInt(strings.TrimSpace(tok), 10, 64)
		if err != nil {
			return true
		}
		if id == destinationID {
			return true
		}
	}
	return false
}
