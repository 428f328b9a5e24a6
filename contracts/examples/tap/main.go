// Command tap is an example of a program outside Rosetta reading its change
// stream. It imports only the contracts package and nats.go: the subject
// layout, stream name and change envelope are all it needs.
//
//	go run ./contracts/examples/tap -source 3                    # every table, from now
//	go run ./contracts/examples/tap -source 3 -table public.orders
//	go run ./contracts/examples/tap -source 3 -durable my-tap     # resumes where it stopped
//
// Each message carries one table's changes of one transaction (envelope
// version 2; version 1 messages carry one change): the program prints every
// change of it. With -durable the consumer survives the program and acks
// each message after printing all its changes, so a restart continues
// after the last message it finished; it also holds changes in the
// source's stream (interest retention) until acked, so delete it (nats
// consumer rm) when you no longer use it. Without -durable an
// ephemeral consumer that acks nothing reads from now on and disappears with
// the program.
//
// NATS admits it with credentials: against `rosetta dev` it reads the tap
// user from <data dir>/nats-credentials.json (-data-dir, default .rosetta);
// against another server, ROSETTA_NATS_USER and ROSETTA_NATS_PASSWORD. The
// tap user may create only ephemeral consumers, through
// $JS.API.CONSUMER.CREATE.<stream> (the one create subject on which the
// server refuses a durable name), so -durable needs a user allowed to
// create durables.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
)

// printChanges prints every change of a message body, one line each. A
// message holds the changes of one table from one transaction (envelope
// version 2), or one change (version 1, still retained in streams written
// before it): contracts.DecodeMessage reads both, and All yields each
// change whole, with its own lsn and seq.
func printChanges(w io.Writer, data []byte) error {
	m, err := contracts.DecodeMessage(data)
	if err != nil {
		return err
	}
	for _, ch := range m.All() {
		key, _ := json.Marshal(ch.Key)
		if _, err := fmt.Fprintf(w, "%s %s %s.%s key=%s commit_lsn=%s seq=%d\n",
			ch.Source.CommitTime.Format("15:04:05.000"), ch.Op, ch.Source.Schema, ch.Source.Table,
			key, ch.Source.CommitLSN, ch.Source.Seq); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	url := flag.String("nats", "nats://127.0.0.1:4223", "NATS URL (4223 is the embedded server of `rosetta dev`)")
	source := flag.Int64("source", 0, "source id (required)")
	table := flag.String("table", "", "only this table, as schema.table")
	durable := flag.String("durable", "", "durable consumer name; empty for an ephemeral one from now on")
	dataDir := flag.String("data-dir", ".rosetta", "data dir of the `rosetta dev` to read (its nats-credentials.json has the tap user)")
	flag.Parse()
	if *source <= 0 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	user, err := credentials(*dataDir)
	if err != nil {
		log.Fatal(err)
	}
	if err := tap(ctx, *url, user, *source, *table, *durable); err != nil {
		log.Fatal(err)
	}
}

// credentials are the user to connect as: ROSETTA_NATS_USER and
// ROSETTA_NATS_PASSWORD, else the tap user of the `rosetta dev` of dataDir,
// else none.
func credentials(dataDir string) (nats.Option, error) {
	if u := os.Getenv("ROSETTA_NATS_USER"); u != "" {
		return nats.UserInfo(u, os.Getenv("ROSETTA_NATS_PASSWORD")), nil
	}
	body, err := os.ReadFile(filepath.Join(dataDir, "nats-credentials.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var c struct {
		Tap struct{ User, Password string } `json:"tap"`
	}
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", dataDir, err)
	}
	// The embedded server lets the tap user subscribe to its own inbox
	// prefix only (natsx.TapInboxPrefix).
	return func(o *nats.Options) error {
		if err := nats.UserInfo(c.Tap.User, c.Tap.Password)(o); err != nil {
			return err
		}
		return nats.CustomInboxPrefix("_INBOX_rosetta_tap")(o)
	}, nil
}

// createEphemeral creates an ephemeral consumer through the create subject
// that takes no consumer name (nats.go's own create uses the named one,
// which a tap user may not).
func createEphemeral(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	cfg.Name = nats.NewInbox()[len(nats.InboxPrefix):]
	req, err := json.Marshal(map[string]any{"stream_name": stream, "config": cfg})
	if err != nil {
		return nil, err
	}
	msg, err := nc.RequestWithContext(ctx, "$JS.API.CONSUMER.CREATE."+stream, req)
	if err != nil {
		return nil, err
	}
	var resp struct {
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return nil, err
	}
	if resp.Error != nil {
		if resp.Error.ErrorCode == jetstream.JSErrCodeStreamNotFound {
			return nil, jetstream.ErrStreamNotFound
		}
		return nil, resp.Error
	}
	return js.Consumer(ctx, stream, cfg.Name)
}

func tap(ctx context.Context, url string, user nats.Option, source int64, table, durable string) error {
	opts := []nats.Option{nats.Name("rosetta-tap-example")}
	if user != nil {
		opts = append(opts, user)
	}
	// deploy/nats/auth.conf lets the tap user subscribe to its own inbox
	// prefix only (_INBOX_rosetta_tap).
	if p := os.Getenv("ROSETTA_NATS_INBOX_PREFIX"); p != "" {
		opts = append(opts, nats.CustomInboxPrefix(p))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return fmt.Errorf("connect %s: %w", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}

	// One stream per source; subjects rosetta.cdc.<source>.<schema>.<table>.<partition>.
	filter := contracts.SourceFilter(source)
	if table != "" {
		schema, name, ok := strings.Cut(table, ".")
		if !ok {
			return fmt.Errorf("-table %q: want schema.table", table)
		}
		filter = contracts.TableFilter(source, schema, name)
	}
	cfg := jetstream.ConsumerConfig{
		Durable:        durable,
		FilterSubjects: []string{filter},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
		AckPolicy:      jetstream.AckNonePolicy,
	}
	if durable != "" {
		cfg.AckPolicy = jetstream.AckExplicitPolicy
	}
	var cons jetstream.Consumer
	if durable != "" {
		cons, err = js.CreateOrUpdateConsumer(ctx, contracts.StreamName(source), cfg)
	} else {
		cons, err = createEphemeral(ctx, nc, js, contracts.StreamName(source), cfg)
	}
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("stream %s does not exist: is source %d captured on this NATS?", contracts.StreamName(source), source)
	}
	if err != nil {
		return fmt.Errorf("consumer on %s: %w", contracts.StreamName(source), err)
	}

	cc, err := cons.Consume(func(msg jetstream.Msg) {
		if err := printChanges(os.Stdout, msg.Data()); err != nil {
			log.Printf("skip %s: %v", msg.Subject(), err)
		}
		if durable != "" {
			// Ack once every change of the message is handled (printed):
			// acks are per message, so a crash before this line
			// redelivers the whole message, changes already handled
			// included. commit_lsn+seq let a consumer that stores
			// changes skip those it already has.
			if err := msg.Ack(); err != nil {
				log.Printf("ack: %v", err)
			}
		}
	})
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	<-ctx.Done()
	cc.Stop()
	return nil
}
