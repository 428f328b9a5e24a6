package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/pkg/changetail"
	"github.com/rosettacdc/rosetta/pkg/humanize"
	"github.com/rosettacdc/rosetta/pkg/natsx"
	"github.com/rosettacdc/rosetta/pkg/settings"
)

const tailUsage = `Usage: rosetta tail <source_id>[.<schema>.<table>] [flags]

Prints the live changes of a source (or of one table) from its JetStream
stream, from now on unless --since or --seq says otherwise: one line per
change, ending in #<stream sequence>, or #<sequence>.<index> for the
changes of a message that holds several (one table of one transaction).
It reads through an ephemeral ordered consumer that acknowledges nothing,
so it never holds changes back from pipelines. Connects to ROSETTA_NATS_URL, or to the embedded
server of 'rosetta dev' at ROSETTA_EMBEDDED_NATS_ADDR (default 127.0.0.1:4223).

Flags:
`

// tailOptions is what `rosetta tail` was asked to do.
type tailOptions struct {
	NATSURL string
	// DataDir holds the embedded server's credentials (tap user), used
	// when NATSURL is the embedded server's.
	DataDir  string
	embedded bool
	SourceID int64
	Schema   string // empty: every table of the source
	Table    string
	Since    time.Time // zero: not set
	Seq      uint64    // 0: not set
	JSON     bool
	Max      int // stop after this many changes; 0: run until interrupted
}

// runTail is the `rosetta tail` command: it runs until SIGINT/SIGTERM.
func runTail(args []string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return tailCommand(ctx, args, stdout, stderr, time.Now)
}

// tailCommand parses args and tails until ctx ends or --max changes were
// printed. now resolves --since durations.
func tailCommand(ctx context.Context, args []string, stdout, stderr io.Writer, now func() time.Time) error {
	opts, err := parseTailArgs(args, stderr, now)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	return tail(ctx, opts, stdout, stderr)
}

func parseTailArgs(args []string, stderr io.Writer, now func() time.Time) (tailOptions, error) {
	var opts tailOptions
	fs := flag.NewFlagSet("rosetta tail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), tailUsage)
		fs.PrintDefaults()
	}
	defURL := os.Getenv(settings.EnvNATSURL)
	opts.embedded = defURL == ""
	opts.DataDir = os.Getenv(settings.EnvDataDir)
	if opts.DataDir == "" {
		opts.DataDir = settings.Default().DataDir
	}
	if defURL == "" {
		addr := os.Getenv(settings.EnvNATSListen)
		if addr == "" {
			addr = settings.Default().EmbeddedNATSAddr
		}
		defURL = "nats://" + addr
	}
	since := fs.String("since", "", "start at this time: RFC3339 (2026-11-23T10:00:00Z) or a duration ago (10m)")
	opts.NATSURL = defURL
	fs.Var(urlFlag{&opts.NATSURL}, "nats-url", "NATS URL ("+settings.EnvNATSURL+", else the embedded server's "+settings.EnvNATSListen+")")
	fs.StringVar(&opts.DataDir, "data-dir", opts.DataDir, "data dir of the `rosetta dev` whose embedded NATS to read, for its credentials ("+settings.EnvDataDir+")")
	fs.Uint64Var(&opts.Seq, "seq", 0, "start at this stream sequence")
	fs.BoolVar(&opts.JSON, "json", false, "print each change as one JSON line: a version 1 change event, whatever the message's version")
	fs.IntVar(&opts.Max, "n", 0, "exit after this many changes (0: run until interrupted)")

	// The target may come before or after the flags.
	var target string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		target, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return opts, err
	}
	if target == "" && fs.NArg() > 0 {
		target = fs.Arg(0)
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return opts, err
		}
	}
	if fs.NArg() > 0 {
		return opts, fmt.Errorf("tail: unexpected argument %q", fs.Arg(0))
	}
	if target == "" {
		fs.Usage()
		return opts, errors.New("tail: missing <source_id>[.<schema>.<table>]")
	}
	if err := parseTailTarget(target, &opts); err != nil {
		return opts, err
	}
	if *since != "" && opts.Seq != 0 {
		return opts, errors.New("tail: --since and --seq exclude each other")
	}
	if *since != "" {
		t, err := parseSince(*since, now())
		if err != nil {
			return opts, err
		}
		opts.Since = t
	}
	if opts.Max < 0 {
		return opts, errors.New("tail: -n must not be negative")
	}
	return opts, nil
}

// parseTailTarget reads "<source_id>" or "<source_id>.<schema>.<table>".
// The schema ends at the first dot after the source id, so a table name may
// contain dots; a schema name with a dot cannot be given here.
func parseTailTarget(target string, opts *tailOptions) error {
	idText, rest, hasTable := strings.Cut(target, ".")
	id, err := strconv.ParseInt(idText, 10, 64)
	if err != nil || id <= 0 {
		return fmt.Errorf("tail: %q: want <source_id>[.<schema>.<table>] with a positive source id", target)
	}
	opts.SourceID = id
	if !hasTable {
		return nil
	}
	schema, table, ok := strings.Cut(rest, ".")
	if !ok || schema == "" || table == "" {
		return fmt.Errorf("tail: %q: want <source_id>.<schema>.<table>", target)
	}
	opts.Schema, opts.Table = schema, table
	return nil
}

// parseSince reads an RFC3339 time or a duration before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("tail: --since %q: want an RFC3339 time (2026-11-23T10:00:00Z) or a duration like 10m", s)
	}
	return now.Add(-d), nil
}

// tail connects to NATS and prints changes to out until ctx ends or
// opts.Max changes were printed. Started in the past (--since, --seq), it
// reports on progress how far it is from the live end until it gets there;
// progress never goes to out, so --json output stays clean.
func tail(ctx context.Context, opts tailOptions, out, progress io.Writer) error {
	connOpts := []nats.Option{nats.Name("rosetta tail"), nats.Timeout(5 * time.Second)}
	if opts.embedded {
		tap, err := natsx.TapOptions(opts.DataDir)
		if err != nil {
			return fmt.Errorf("tail: %w", err)
		}
		connOpts = append(connOpts, tap...)
	} else {
		a, err := settings.LoadNATSAuth()
		if err != nil {
			return fmt.Errorf("tail: %w", err)
		}
		auth, err := natsx.AuthOptions(a)
		if err != nil {
			return fmt.Errorf("tail: %w", err)
		}
		connOpts = append(connOpts, auth...)
	}
	shown := natsx.RedactURL(opts.NATSURL)
	nc, err := nats.Connect(opts.NATSURL, connOpts...)
	err = natsx.RedactError(err, opts.NATSURL)
	if errors.Is(err, nats.ErrAuthorization) && opts.embedded {
		return fmt.Errorf("tail: the embedded NATS at %s refused the connection: run tail with the --data-dir (%s) of that `rosetta dev`, which holds its %s",
			shown, settings.EnvDataDir, natsx.CredentialsFile)
	}
	if err != nil {
		return fmt.Errorf("tail: connect to nats %s (set %s or --nats-url, and its credentials, see docs/transport.md): %w", shown, settings.EnvNATSURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("tail: jetstream: %w", err)
	}
	var tables []changetail.Table
	if opts.Table != "" {
		tables = []changetail.Table{{Schema: opts.Schema, Name: opts.Table}}
	}
	cons, err := changetail.Open(ctx, js, opts.SourceID, tables, changetail.Start{Seq: opts.Seq, Since: opts.Since})
	if errors.Is(err, changetail.ErrNoStream) {
		return fmt.Errorf("tail: %w: source %d has no captured changes here (is the source created and capture running against this NATS?)", err, opts.SourceID)
	}
	if err != nil {
		return fmt.Errorf("tail: %w", err)
	}

	var catching *catchUp
	if opts.Seq != 0 || !opts.Since.IsZero() {
		var total uint64
		if ci := cons.CachedInfo(); ci != nil {
			total = ci.NumPending
		}
		catching = newCatchUp(progress, total, time.Now)
	}
	printed := 0
	err = changetail.Follow(ctx, cons, func(msg jetstream.Msg) error {
		var seq, left uint64
		if md, err := msg.Metadata(); err == nil {
			seq, left = md.Sequence.Stream, md.NumPending
		}
		lines := changetail.TextLines(msg.Data(), seq)
		if opts.JSON {
			lines = changetail.JSONLines(msg.Data())
		}
		// -n counts changes, so it may stop inside a message.
		if opts.Max > 0 {
			lines = lines[:min(len(lines), opts.Max-printed)]
		}
		if err := printLines(out, lines); err != nil {
			return err
		}
		printed += len(lines)
		if catching != nil && catching.seen(left) {
			catching = nil
		}
		if opts.Max > 0 && printed >= opts.Max {
			return errEnough
		}
		return nil
	})
	if errors.Is(err, errEnough) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("tail: %w", err)
	}
	return nil
}

// errEnough stops following once -n changes were printed.
var errEnough = errors.New("printed enough changes")

// printLines writes the lines of one message, one per change: each change
// as a version 1 JSON change event (changetail.JSONLines) or a pretty line
// (changetail.TextLines). A body that is not a change message is shown,
// not fatal.
func printLines(out io.Writer, lines []string) error {
	for _, l := range lines {
		if _, err := fmt.Fprintln(out, l); err != nil {
			return fmt.Errorf("tail: write: %w", err)
		}
	}
	return nil
}

// catchUp reports a tail started in the past catching up with the live
// end of the stream: "catching up: N of M messages (x%)" at most once a
// second, then "caught up" once it reaches the end. It counts messages,
// not changes: JetStream's pending count is of messages, and a message
// may hold many changes.
type catchUp struct {
	w      io.Writer
	now    func() time.Time
	done   uint64
	total  uint64
	lastAt time.Time
}

// newCatchUp starts reporting; total is the messages the consumer had to
// deliver when it was created. With none it says so and returns nil.
func newCatchUp(w io.Writer, total uint64, now func() time.Time) *catchUp {
	if total == 0 {
		fmt.Fprintln(w, "tail: nothing to catch up from there; following live changes")
		return nil
	}
	fmt.Fprintf(w, "tail: catching up: 0 of %s messages\n", humanize.Thousands(int64(total)))
	return &catchUp{w: w, now: now, total: total, lastAt: now()}
}

// seen counts one delivered message after which left more are waiting. It
// returns true once caught up (and has said so); the caller stops calling.
func (c *catchUp) seen(left uint64) bool {
	c.done++
	// Messages published meanwhile make the total grow.
	c.total = max(c.total, c.done+left)
	if left == 0 {
		fmt.Fprintf(c.w, "tail: caught up after %s messages; following live changes\n", humanize.Thousands(int64(c.done)))
		return true
	}
	if now := c.now(); now.Sub(c.lastAt) >= time.Second {
		c.lastAt = now
		fmt.Fprintf(c.w, "tail: catching up: %s of %s messages (%d%%)\n", humanize.Thousands(int64(c.done)), humanize.Thousands(int64(c.total)),
			c.done*100/c.total)
	}
	return false
}
