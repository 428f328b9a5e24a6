package faults

import (
	"fmt"
	"os"
	"testing"

	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// binaries are built once per `go test` run by TestMain.
type binaries struct {
	rosetta    string
	natsServer string
}

var bins binaries

// TestMain builds the rosetta binary and a nats-server of the same version
// as the one Rosetta embeds (github.com/nats-io/nats-server/v2 from go.mod).
// The Debian nats-server package (2.9) predates consumers with several
// filter subjects, which every pipeline consumer uses, so it cannot serve
// Rosetta; FAULTS_NATS_SERVER names another binary (2.10 or later).
// FAULTS_RACE=1 builds rosetta with the race detector (slower);
// FAULTS_ROSETTA=/path/to/rosetta uses that binary instead of building one
// (the mutation experiments of docs/guarantees.md build a mutated binary
// and revert the source at once, since others share the working tree).
func TestMain(m *testing.M) {
	bin, cleanup := os.Getenv("FAULTS_ROSETTA"), func() {}
	if bin == "" {
		var err error
		bin, cleanup, err = testkit.BuildBinary("../services/rosetta", "rosetta", os.Getenv("FAULTS_RACE") != "")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	bins.rosetta = bin
	bins.natsServer = os.Getenv("FAULTS_NATS_SERVER")
	if bins.natsServer == "" {
		nats, cleanupNATS, err := testkit.BuildBinary("github.com/nats-io/nats-server/v2", "nats-server", false)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			cleanup()
			os.Exit(1)
		}
		bins.natsServer = nats
		defer cleanupNATS()
	}
	// Returning (rather than os.Exit) lets the deferred cleanup run; the
	// test binary exits with m.Run's result.
	defer cleanup()
	m.Run()
}
