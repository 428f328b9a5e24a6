package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/secrets"
	"github.com/rosettacdc/rosetta/pkg/testkit"
)

// TestTokenCommand creates, lists and revokes a token with `rosetta
// token` and checks the config DB: the hash authenticates until revoked,
// and both changes are in the audit log as made by "cli".
func TestTokenCommand(t *testing.T) {
	pg := testkit.StartPostgres(t)
	cfg := pg.CreateDatabase(t, "cfg")
	t.Setenv("ROSETTA_CONFIG_DSN", pg.DSN(cfg))
	t.Setenv("ROSETTA_SECRET_KEY", "")
	var out, errb bytes.Buffer
	if err := run([]string{"token", "create", "--name", "ci", "--role", "operator", "--expires", "48h"}, &out, &errb); err != nil {
		t.Fatalf("create: %v\n%s", err, errb.String())
	}
	value := strings.TrimSpace(out.String())
	box, _ := secrets.NewBox("token-test-secret-key-0123456789")
	st, err := configstore.Open(context.Background(), pg.DSN(cfg), box)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tok, err := st.Authenticate(context.Background(), value)
	if err != nil || tok.Name != "ci" || tok.ExpiresAt == nil {
		t.Fatalf("authenticate the printed token: %+v %v", tok, err)
	}
	out.Reset()
	if err := run([]string{"token", "list"}, &out, &errb); err != nil || !strings.Contains(out.String(), "ci") ||
		!strings.Contains(out.String(), "operator") || strings.Contains(out.String(), value) {
		t.Fatalf("list: %v\n%s", err, out.String())
	}
	if err := run([]string{"token", "create", "--name", "x", "--role", "root"}, &out, &errb); err == nil {
		t.Fatal("a bad role was accepted")
	}
	out.Reset()
	if err := run([]string{"token", "revoke", "1"}, &out, &errb); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if _, err := st.Authenticate(context.Background(), value); err == nil {
		t.Fatal("a revoked token authenticates")
	}
	entries, _, err := st.ListAudit(context.Background(), configstore.Page{})
	if err != nil || len(entries) != 2 || entries[0].Action != "revoke" || entries[1].Action != "create" || entries[0].TokenName != "cli" {
		t.Fatalf("audit: %+v %v", entries, err)
	}
}
