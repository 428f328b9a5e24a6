package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/secrets"
	"github.com/rosettacdc/rosetta/pkg/settings"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// TestSecretsRotateCommand: `rosetta secrets rotate` with the new key and the
// old one as previous leaves every secret readable with the new key alone.
func TestSecretsRotateCommand(t *testing.T) {
	const oldKey, newKey = "rotate-cmd-old-key-0123456789", "rotate-cmd-new-key-0123456789"
	ctx := context.Background()
	pg := testkit.StartPostgres(t)
	db := pg.CreateDatabase(t, "cfg")
	open := func(cur string, prev ...string) *configstore.Store {
		box, err := secrets.NewBox(cur, prev...)
		if err != nil {
			t.Fatal(err)
		}
		st, err := configstore.Open(ctx, pg.DSN(db), box)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(st.Close)
		return st
	}
	old := open(oldKey)
	if err := old.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	pw := "pw-0"
	src, err := old.CreateSource(ctx, configstore.SourceInput{Name: "s", Host: "h", Port: 5432, Database: "d", User: "u", Password: &pw})
	if err != nil {
		t.Fatal(err)
	}

	t.Setenv(settings.EnvConfigDSN, pg.DSN(db))
	t.Setenv(settings.EnvSecretKey, newKey)
	t.Setenv(settings.EnvSecretPrev, oldKey)
	var out, errOut bytes.Buffer
	if err := run([]string{"secrets", "rotate"}, &out, &errOut); err != nil {
		t.Fatalf("rotate: %v\n%s%s", err, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "done:") {
		t.Fatalf("rotate printed:\n%s", out.String())
	}
	got, err := open(newKey).SourceWithSecrets(ctx, src.ID)
	if err != nil || got.Password != pw {
		t.Fatalf("after rotation, new key alone: %q, %v", got.Password, err)
	}

	// Without the previous key the command cannot open the old values
	// and says so, instead of claiming success.
	other := open(oldKey)
	pw2 := "pw-1"
	if _, err := other.UpdateSource(ctx, src.ID, configstore.SourceInput{Name: "s", Host: "h", Port: 5432, Database: "d", User: "u", Password: &pw2}); err != nil {
		t.Fatal(err)
	}
	t.Setenv(settings.EnvSecretPrev, "")
	out.Reset()
	if err := run([]string{"secrets", "rotate"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "run it again") {
		t.Fatalf("rotate without the previous key: err = %v, output:\n%s", err, out.String())
	}
}
