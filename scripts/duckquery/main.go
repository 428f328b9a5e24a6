// Command duckquery runs one read-only SQL query against a DuckDB file and
// prints the rows tab-separated. While Rosetta writes the file it holds
// DuckDB's lock. When a Rosetta API answers (ROSETTA_HTTP_ADDR, or -api)
// and has the file as a DuckDB destination, duckquery sends the query to
// POST /api/v1/destinations/{id}/query with ROSETTA_API_TOKEN or the token
// `rosetta dev` keeps in its data directory. Otherwise it asks the process
// holding the file over NATS (pkg/destquery: ROSETTA_NATS_URL, or `rosetta
// dev`'s embedded server), and when none holds it, opens the file
// read-only itself, retrying for -wait while another process holds it. It
// says on stderr which way the query went. Only single read statements are
// accepted, and a query cannot read other files.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rosettacdc/rosetta/pkg/destquery"
	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/settings"
)

func main() {
	wait := flag.Duration("wait", 10*time.Second, "how long to retry while a process that serves no queries holds the file")
	limit := flag.Int("limit", destquery.MaxLimit, "most rows printed")
	natsURL := flag.String("nats", defaultNATS(), "NATS of the running Rosetta, to reach the process holding the file (empty: never)")
	apiURL := flag.String("api", defaultAPI(), "the running Rosetta's API, tried first (empty: never)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: duckquery [-wait 10s] [-limit N] [-api URL] [-nats URL] FILE SQL")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 2 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(flag.Arg(0), flag.Arg(1), *apiURL, *natsURL, *wait, *limit); err != nil {
		fmt.Fprintln(os.Stderr, "duckquery:", err)
		os.Exit(1)
	}
}

// defaultNATS is Rosetta's NATS: ROSETTA_NATS_URL, else where `rosetta dev`
// runs its embedded server.
func defaultNATS() string {
	if u := os.Getenv(settings.EnvNATSURL); u != "" {
		return u
	}
	addr := os.Getenv(settings.EnvNATSListen)
	if addr == "" {
		addr = settings.Default().EmbeddedNATSAddr
	}
	return "nats://" + addr
}

func run(path, query, apiURL, natsURL string, wait time.Duration, limit int) error {
	ctx, cancel := context.WithTimeout(context.Background(), wait+destquery.MaxTimeout)
	defer cancel()
	res, err := queryThroughAPI(ctx, apiURL, path, query, limit, os.Stderr)
	if err == nil {
		printResult(res)
		return nil
	}
	if !errors.Is(err, errNoAPI) {
		return err
	}
	var nc *nats.Conn
	if natsURL != "" {
		// No Rosetta running is the normal case for a file at rest: a
		// short connect attempt, then the file itself.
		opts := []nats.Option{nats.Timeout(time.Second), nats.Name("duckquery")}
		if os.Getenv(settings.EnvNATSURL) == "" {
			// The embedded server of `rosetta dev` admits its tap user.
			dir := os.Getenv(settings.EnvDataDir)
			if dir == "" {
				dir = settings.Default().DataDir
			}
			tap, err := natsx.TapOptions(dir)
			if err != nil {
				return err
			}
			opts = append(opts, tap...)
		} else {
			a, err := settings.LoadNATSAuth()
			if err != nil {
				return err
			}
			auth, err := natsx.AuthOptions(a)
			if err != nil {
				return err
			}
			opts = append(opts, auth...)
		}
		c, err := nats.Connect(natsURL, opts...)
		if err == nil {
			defer c.Close()
			nc = c
		}
	}
	if nc != nil {
		fmt.Fprintf(os.Stderr, "duckquery: asking the Rosetta process holding %s over NATS (%s), else opening it read-only\n", path, natsx.RedactURL(natsURL))
	} else {
		fmt.Fprintf(os.Stderr, "duckquery: no Rosetta reachable: opening %s read-only\n", path)
	}
	q := destquery.NewQuerier(nil, nc)
	req := destquery.Request{SQL: query, Limit: limit, Timeout: destquery.MaxTimeout}
	deadline := time.Now().Add(wait)
	for {
		res, err := q.Query(ctx, path, req)
		if err == nil {
			printResult(res)
			return nil
		}
		if !errors.Is(err, destquery.ErrHeldElsewhere) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond) // paces retries while another process holds the file
	}
}

func printResult(res *destquery.Result) {
	for _, row := range res.Rows {
		out := make([]string, len(row))
		for i, v := range row {
			out[i] = "NULL"
			if v != nil {
				out[i] = *v
			}
		}
		fmt.Println(strings.Join(out, "\t"))
	}
	if res.Truncated {
		fmt.Fprintf(os.Stderr, "duckquery: output truncated at %d rows\n", len(res.Rows))
	}
}
