package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/secrets"
	"github.com/rosettacdc/rosetta/pkg/settings"
)

const secretsUsage = `Usage: rosetta secrets rotate

Re-seals every stored password and key under ROSETTA_SECRET_KEY. Run it with
the new key in ROSETTA_SECRET_KEY and the old one in
ROSETTA_SECRET_KEY_PREVIOUS, after restarting the services with both (they
open values of either key and seal new ones under the new key). It can run
beside the services and be interrupted: a second run re-seals only what is
left. Once it reports nothing left, drop ROSETTA_SECRET_KEY_PREVIOUS and
restart the services. See docs/security.md.
`

// runSecrets is `rosetta secrets <verb>`.
func runSecrets(args []string, stdout, stderr io.Writer) error {
	if len(args) != 1 || args[0] != "rotate" {
		fmt.Fprint(stderr, secretsUsage)
		if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
			return nil
		}
		return errors.New("secrets: want `rosetta secrets rotate`")
	}
	s, err := settings.Load()
	if err != nil {
		return err
	}
	if _, err := s.Validate(); err != nil {
		return err
	}
	if s.SecretKey == settings.DevSecretKey {
		return fmt.Errorf("secrets rotate: %s is the public development key; rotate to a random key", settings.EnvSecretKey)
	}
	box, err := secrets.NewBox(s.SecretKey, s.SecretKeyPrevious)
	if err != nil {
		return fmt.Errorf("secrets rotate: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	st, err := configstore.Open(ctx, s.ConfigDSN, box)
	if err != nil {
		return fmt.Errorf("secrets rotate: open config db: %w", err)
	}
	defer st.Close()
	fmt.Fprintf(stdout, "re-sealing under key %s\n", box.KeyID())
	fmt.Fprintf(stdout, "%-14s %-14s %6s %9s %9s\n", "table", "column", "rows", "re-sealed", "current")
	_, err = st.RotateSecrets(ctx, func(p configstore.RotateProgress) {
		fmt.Fprintf(stdout, "%-14s %-14s %6d %9d %9d\n", p.Table, p.Column, p.Seen, p.Resealed, p.Skipped)
	})
	if err != nil {
		return fmt.Errorf("secrets rotate: %w (run it again to resume)", err)
	}
	fmt.Fprintf(stdout, "done: every stored secret is sealed under key %s; %s can be removed\n", box.KeyID(), settings.EnvSecretPrev)
	return nil
}
