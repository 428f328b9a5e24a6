package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rosettacdc/rosetta/pkg/configstore"
	"github.com/rosettacdc/rosetta/pkg/destquery"
	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/secrets"
	"github.com/rosettacdc/rosetta/pkg/settings"
	"github.com/rosettacdc/rosetta/pkg/verify"
	"github.com/rosettacdc/rosetta/services/api"
)

const verifyUsage = `Usage: rosetta verify [flags] <pipeline id or name>

Compares each table of the pipeline at its source and at each of its
destinations (docs/verify.md): row counts and checksums over key ranges,
narrowed to the keys that differ. The source is read in one REPEATABLE READ
snapshot, without locks. DuckDB destinations are read through the process
that holds the file. Uses the config DB (ROSETTA_CONFIG_DSN,
ROSETTA_SECRET_KEY) for the stored credentials.

Exit status: 0 when every table is equal, 1 on an error, 3 when a table
differs.

Flags:
`

// errDiffer makes `rosetta verify` exit with status 3.
var errDiffer = errors.New("tables differ")

func runVerify(args []string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	s, err := settings.Load()
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("rosetta verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), verifyUsage)
		fs.PrintDefaults()
	}
	natsURL := s.NATSURL
	if natsURL == "" {
		natsURL = "nats://" + s.EmbeddedNATSAddr
	}
	fs.StringVar(&s.ConfigDSN, "config-dsn", s.ConfigDSN, "config database URL ("+settings.EnvConfigDSN+")")
	fs.StringVar(&s.DataDir, "data-dir", s.DataDir, "data dir of the `rosetta dev` whose embedded NATS to use, for its credentials ("+settings.EnvDataDir+")")
	fs.StringVar(&natsURL, "nats-url", natsURL, "NATS of the running Rosetta, to read DuckDB files through their holder (empty: open them here)")
	tables := fs.String("tables", "", "comma-separated schema.table list (default: every table of the pipeline)")
	dests := fs.String("destinations", "", "comma-separated destination ids (default: every destination)")
	backfill := fs.Bool("backfill", false, "create backfill jobs of the missing and differing keys at each destination")
	chunk := fs.Int("chunk-rows", verify.DefaultChunkRows, "source rows per checksummed key range")
	showKeys := fs.Int("keys", 20, "differing keys printed per table and destination")
	quiet := fs.Bool("q", false, "no progress on stderr")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("verify takes one pipeline id or name")
	}
	req := api.VerifyRequest{Backfill: *backfill, ChunkRows: chunk}
	if *tables != "" {
		req.Tables = strings.Split(*tables, ",")
	}
	if *dests != "" {
		for _, d := range strings.Split(*dests, ",") {
			id, err := strconv.ParseInt(strings.TrimSpace(d), 10, 64)
			if err != nil {
				return fmt.Errorf("--destinations: %q is not a destination id", d)
			}
			req.DestinationIDs = append(req.DestinationIDs, id)
		}
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
	id, err := pipelineID(ctx, store, fs.Arg(0))
	if err != nil {
		return err
	}
	var nc *nats.Conn
	if natsURL != "" {
		// Without a running Rosetta nothing holds the files: a short
		// attempt, then they are opened here.
		opts := []nats.Option{nats.Timeout(2 * time.Second), nats.Name("rosetta verify")}
		if s.NATSURL == "" {
			// rosetta dev's embedded server admits its tap user, which
			// may ask holders for queries (pkg/natsx).
			if tap, err := natsx.TapOptions(s.DataDir); err == nil {
				opts = append(opts, tap...)
			}
		} else {
			auth, err := natsx.AuthOptions(s.NATSAuth)
			if err != nil {
				return fmt.Errorf("verify: nats client settings: %w", err)
			}
			opts = append(opts, auth...)
		}
		if c, err := nats.Connect(natsURL, opts...); err == nil {
			defer c.Close()
			nc = c
		}
	}
	var progress func(verify.Progress)
	if !*quiet {
		progress = progressPrinter(stderr)
	}
	v := api.Verifier{Store: store, Querier: destquery.NewQuerier(nil, nc)}
	view, err := v.Verify(ctx, id, req, progress)
	if err != nil {
		return fmt.Errorf("verify pipeline %d: %w", id, err)
	}
	printVerify(stdout, view, *showKeys)
	if !view.Equal {
		return errDiffer
	}
	return nil
}

// pipelineID resolves an id or a pipeline name.
func pipelineID(ctx context.Context, store *configstore.Store, arg string) (int64, error) {
	return resolveID(ctx, arg, "pipeline", store.ListAllPipelines, func(p configstore.Pipeline) (int64, string) { return p.ID, p.Name })
}

// progressPrinter reports progress at most once a second per table and
// destination, and always at the end of one.
func progressPrinter(w io.Writer) func(verify.Progress) {
	var mu sync.Mutex
	last := map[string]time.Time{}
	return func(p verify.Progress) {
		mu.Lock()
		defer mu.Unlock()
		k := p.Table + "@" + p.Destination
		done := p.RowsChecked >= p.RowsTotal
		if !done && time.Since(last[k]) < time.Second {
			return
		}
		last[k] = time.Now()
		pct := 100.0
		if p.RowsTotal > 0 {
			pct = 100 * float64(p.RowsChecked) / float64(p.RowsTotal)
		}
		fmt.Fprintf(w, "verify %s at %s: %d of %d source rows checked (%.0f%%)\n", p.Table, p.Destination, p.RowsChecked, p.RowsTotal, pct)
	}
}

// printVerify prints the result table, the first differing keys and the
// backfills created.
func printVerify(w io.Writer, view api.VerifyView, showKeys int) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tDESTINATION\tSOURCE ROWS\tDEST ROWS\tMISSING\tEXTRA\tDIFFERING\tSTATUS")
	for _, r := range view.Results {
		status := r.Status
		if r.Error != "" {
			status += ": " + r.Error
		}
		fmt.Fprintf(tw, "%s\t%s (%s)\t%d\t%d\t%d\t%d\t%d\t%s\n", r.Table, r.Destination, r.DestinationType, r.SourceRows,
			r.DestinationRows, r.Missing, r.Extra, r.Differing, status)
	}
	_ = tw.Flush()
	for _, r := range view.Results {
		if len(r.Keys) == 0 || showKeys <= 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s at %s, keys (%s):\n", r.Table, r.Destination, strings.Join(r.KeyColumns, ", "))
		for i, k := range r.Keys {
			if i == showKeys {
				fmt.Fprintf(w, "  … %d more\n", r.Missing+r.Extra+r.Differing-int64(showKeys))
				break
			}
			fmt.Fprintf(w, "  %-9s %s\n", k.Diff, strings.Join(k.Key, ", "))
		}
	}
	for _, b := range view.Backfills {
		fmt.Fprintf(w, "backfill %d created: %s at destinations %v\n", b.ID, b.Table, b.DestinationIDs)
	}
	for _, e := range view.BackfillErrors {
		fmt.Fprintf(w, "no backfill: %s\n", e)
	}
}
