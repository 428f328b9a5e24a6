package faults

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
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
// FAULTS_RACE=1 builds rosetta with the race detector (slower).
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rosetta-faults-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins.rosetta = filepath.Join(dir, "rosetta")
	args := []string{"build", "-o", bins.rosetta}
	if os.Getenv("FAULTS_RACE") != "" {
		args = append(args, "-race")
	}
	if err := goBuild(append(args, "../services/rosetta")...); err != nil {
		fmt.Fprintln(os.Stderr, "build rosetta:", err)
		os.Exit(1)
	}
	bins.natsServer = os.Getenv("FAULTS_NATS_SERVER")
	if bins.natsServer == "" {
		bins.natsServer = filepath.Join(dir, "nats-server")
		if err := goBuild("build", "-o", bins.natsServer, "github.com/nats-io/nats-server/v2"); err != nil {
			fmt.Fprintln(os.Stderr, "build nats-server:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func goBuild(args ...string) error {
	cmd := exec.Command("go", args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}
