package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/rosettacdc/rosetta/pkg/changetail"
	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/destcheck"
	"github.com/rosettacdc/rosetta/pkg/secrets"
	"github.com/rosettacdc/rosetta/pkg/settings"
	"github.com/rosettacdc/rosetta/services/api"
	"github.com/rosettacdc/rosetta/services/sink/drivers/builtin"
	"github.com/rosettacdc/rosetta/services/sink/drivers/desttype"
)

const checkDestinationUsage = `Usage: rosetta check-destination [flags] <destination id or name>

Checks a stored Snowflake destination live, with its stored credentials
(docs/snowflake.md, First run checklist): login, temporary table, stage
PUT and REMOVE, warehouse DML and query, then a round trip of a few
hundred rows of every mapped type through the sink's own write path
(staging file, PUT, COPY, MERGE) into a transient table in the configured
schema, read back and compared value by value; the table is dropped.
Run it where the sink runs: a private_key_path or tls_ca_file is read on
this host. Uses the config DB (ROSETTA_CONFIG_DSN, ROSETTA_SECRET_KEY).

Exit status: 0 when every step passes, 1 otherwise.

Flags:
`

// liveCheckers are the live checks of the types that have one, for the
// API and `rosetta check-destination`.
func liveCheckers(types desttype.Types, log *slog.Logger) api.DestinationLiveCheckers {
	out := api.DestinationLiveCheckers{}
	for _, t := range types {
		if check := t.LiveCheck; check != nil {
			out[t.Name] = func(ctx context.Context, raw json.RawMessage) destcheck.Report { return check(ctx, raw, log) }
		}
	}
	return out
}

func runCheckDestination(args []string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	s, err := settings.Load()
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("rosetta check-destination", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), checkDestinationUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&s.ConfigDSN, "config-dsn", s.ConfigDSN, "config database URL ("+settings.EnvConfigDSN+")")
	timeout := fs.Duration("timeout", 5*time.Minute, "longest the whole check may take")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("check-destination takes one destination id or name")
	}
	if _, err := s.Validate(); err != nil {
		return err
	}
	box, err := secrets.NewBox(s.SecretKey, s.SecretKeyPrevious)
	if err != nil {
		return err
	}
	store, err := configstore.Open(ctx, s.ConfigDSN, box)
	if err != nil {
		return fmt.Errorf("open config db: %w", err)
	}
	defer store.Close()
	id, err := destinationID(ctx, store, fs.Arg(0))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	view, err := api.LiveChecks{Store: store, Checkers: liveCheckers(builtin.Types(), log)}.Run(ctx, id)
	if err != nil {
		return fmt.Errorf("check destination %d: %w", id, err)
	}
	printLiveCheck(stdout, view)
	if !view.OK {
		failed := 0
		for _, r := range view.Results {
			if !r.OK {
				failed++
			}
		}
		return fmt.Errorf("destination %s failed %d of %d checks", view.Name, failed, len(view.Results))
	}
	return nil
}

// destinationID resolves an id or a destination name.
func destinationID(ctx context.Context, store *configstore.Store, arg string) (int64, error) {
	return resolveID(ctx, arg, "destination", store.ListAllDestinations, func(d configstore.Destination) (int64, string) { return d.ID, d.Name })
}

// resolveID reads arg as a positive id, or else finds the entity of kind
// named arg among those list returns.
func resolveID[T any](ctx context.Context, arg, kind string, list func(context.Context) ([]T, error), idName func(T) (int64, string)) (int64, error) {
	if id, err := strconv.ParseInt(arg, 10, 64); err == nil && id > 0 {
		return id, nil
	}
	all, err := list(ctx)
	if err != nil {
		return 0, fmt.Errorf("list %ss: %w", kind, err)
	}
	for _, e := range all {
		if id, name := idName(e); name == arg {
			return id, nil
		}
	}
	return 0, fmt.Errorf("no %s has the id or name %q", kind, arg)
}

// printLiveCheck prints one line per step: CHECK, RESULT, DETAIL.
func printLiveCheck(w io.Writer, view api.LiveCheckView) {
	fmt.Fprintf(w, "destination %s (%d, %s)\n", view.Name, view.DestinationID, view.Type)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tRESULT\tDETAIL")
	for _, r := range view.Results {
		res := "pass"
		if !r.OK {
			res = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Check, res, changetail.Escape(r.Detail))
	}
	_ = tw.Flush()
}
