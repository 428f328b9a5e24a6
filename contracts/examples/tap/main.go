// Command tap is an example of a program outside Rosetta reading its change
// stream. It imports only the contracts package and nats.go: the subject
// layout, stream name and change envelope are all it needs.
//
//	go run ./contracts/examples/tap -source 3                    # every table, from now
//	go run ./contracts/examples/tap -source 3 -table public.orders
//	go run ./contracts/examples/tap -source 3 -durable my-tap     # resumes where it stopped
//
// With -durable the consumer survives the program and acks each change after
// printing it, so a restart continues after the last printed change; it also
// holds changes in the source's stream (interest retention) until acked, so
// delete it (nats consumer rm) when you no longer use it. Without -durable an
// ephemeral consumer that acks nothing reads from now on and disappears with
// the program.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rosettacdc/rosetta/contracts"
)

func main() {
	url := flag.String("nats", "nats://127.0.0.1:4223", "NATS URL (4223 is the embedded server of `rosetta dev`)")
	source := flag.Int64("source", 0, "source id (required)")
	table := flag.String("table", "", "only this table, as schema.table")
	durable := flag.String("durable", "", "durable consumer name; empty for an ephemeral one from now on")
	flag.Parse()
	if *source <= 0 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := tap(ctx, *url, *source, *table, *durable); err != nil {
		log.Fatal(err)
	}
}

func tap(ctx context.Context, url string, source int64, table, durable string) error {
	nc, err := nats.Connect(url, nats.Name("rosetta-tap-example"))
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
	cons, err := js.CreateOrUpdateConsumer(ctx, contracts.StreamName(source), cfg)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("stream %s does not exist: is source %d captured on this NATS?", contracts.StreamName(source), source)
	}
	if err != nil {
		return fmt.Errorf("consumer on %s: %w", contracts.StreamName(source), err)
	}

	cc, err := cons.Consume(func(msg jetstream.Msg) {
		var ch contracts.Change
		if err := json.Unmarshal(msg.Data(), &ch); err != nil {
			log.Printf("skip %s: %v", msg.Subject(), err)
		} else {
			key, _ := json.Marshal(ch.Key)
			fmt.Printf("%s %s %s.%s key=%s commit_lsn=%s seq=%d\n",
				ch.Source.CommitTime.Format("15:04:05.000"), ch.Op, ch.Source.Schema, ch.Source.Table,
				key, ch.Source.CommitLSN, ch.Source.Seq)
		}
		if durable != "" {
			// Ack after the change is handled (printed): a crash before
			// this line redelivers it. commit_lsn+seq let a consumer that
			// stores changes skip one it already has.
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
