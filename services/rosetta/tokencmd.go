package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/rosettacdc/rosetta/pkg/changetail"
	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/secrets"
	"github.com/rosettacdc/rosetta/pkg/settings"
	"github.com/rosettacdc/rosetta/services/api"
)

const tokenUsage = `Usage:
  rosetta token create --name NAME --role viewer|operator|admin [--expires 720h]
  rosetta token list [--revoked]
  rosetta token revoke ID

Manages API tokens directly in the config database (ROSETTA_CONFIG_DSN), for
the first admin token or when no admin token is at hand; admins can do the
same over the API (POST/GET /api/v1/tokens, DELETE /api/v1/tokens/{id}).
create prints the token once: it is stored only as a hash. Changes are
recorded in the audit log as made by "cli". See docs/security.md.
`

// cliAuditName is who the audit log says made a change with `rosetta token`.
const cliAuditName = "cli"

// runToken is `rosetta token <verb>`.
func runToken(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, tokenUsage)
		if len(args) == 0 {
			return errors.New("token: want create, list or revoke")
		}
		return nil
	}
	verb, rest := args[0], args[1:]
	fs := flag.NewFlagSet("rosetta token "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "the token's name (unique among live tokens)")
	role := fs.String("role", "", "viewer, operator or admin")
	expires := fs.String("expires", "", "lifetime, like 720h (default: never expires)")
	revoked := fs.Bool("revoked", false, "list revoked tokens too")
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	switch verb {
	case "create", "list", "revoke":
	default:
		fmt.Fprint(stderr, tokenUsage)
		return fmt.Errorf("token: unknown verb %q: want create, list or revoke", verb)
	}
	s, err := settings.Load()
	if err != nil {
		return err
	}
	// Tokens are not sealed secrets: the box only satisfies Open. Without
	// ROSETTA_SECRET_KEY a random key is used, which opens nothing.
	key := s.SecretKey
	if key == "" {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return err
		}
		key = hex.EncodeToString(b)
	}
	box, err := secrets.NewBox(key)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	st, err := configstore.Open(ctx, s.ConfigDSN, box)
	if err != nil {
		return fmt.Errorf("token: open config db: %w", err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return fmt.Errorf("token: %w", err)
	}
	switch verb {
	case "create":
		in, err := api.TokenInput(*name, *role, nil, *expires, time.Now())
		if err != nil {
			return fmt.Errorf("token create: %w (--name, --role, --expires)", err)
		}
		value, t, err := st.CreateToken(ctx, in)
		if err != nil {
			return fmt.Errorf("token create: %w", err)
		}
		audit(ctx, st, stderr, "create", t)
		fmt.Fprintf(stderr, "token %d %q (%s) created; it is shown only now:\n", t.ID, t.Name, t.Role)
		fmt.Fprintln(stdout, value)
	case "list":
		toks, _, err := st.ListTokens(ctx, *revoked, configstore.Page{Limit: 500})
		if err != nil {
			return fmt.Errorf("token list: %w", err)
		}
		w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tNAME\tROLE\tCREATED\tLAST USED\tEXPIRES\tREVOKED")
		for _, t := range toks {
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, changetail.Escape(t.Name), t.Role, t.CreatedAt.UTC().Format(time.RFC3339),
				when(t.LastUsedAt), when(t.ExpiresAt), when(t.RevokedAt))
		}
		return w.Flush()
	case "revoke":
		if fs.NArg() != 1 {
			return errors.New("token revoke: give the token's id (rosetta token list)")
		}
		id, err := strconv.ParseInt(fs.Arg(0), 10, 64)
		if err != nil || id <= 0 {
			return fmt.Errorf("token revoke: %q is not a token id", fs.Arg(0))
		}
		t, err := st.RevokeToken(ctx, id)
		if err != nil {
			return fmt.Errorf("token revoke: %w", err)
		}
		audit(ctx, st, stderr, "revoke", t)
		fmt.Fprintf(stdout, "token %d %q revoked\n", t.ID, changetail.Escape(t.Name))
	}
	return nil
}

func when(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// audit records a CLI change; a failure is reported, not fatal (the change
// is made).
func audit(ctx context.Context, st *configstore.Store, stderr io.Writer, action string, t configstore.Token) {
	after, _ := json.Marshal(map[string]any{"id": t.ID, "name": t.Name, "role": t.Role.String(), "revoked_at": t.RevokedAt})
	err := st.AppendAudit(ctx, configstore.AuditEntry{TokenName: cliAuditName, Action: action, Entity: "tokens",
		EntityID: strconv.FormatInt(t.ID, 10), After: after})
	if err != nil {
		fmt.Fprintf(stderr, "warning: %v\n", err)
	}
}
