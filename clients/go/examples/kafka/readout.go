package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// readOutMain prints every committed record of the output topic, one JSON line each, and
// stops once no record arrived for -idle (-first-wait for the first one).
func readOutMain(args []string) error {
	fs := flag.NewFlagSet("read-out", flag.ExitOnError)
	brokers := fs.String("brokers", "127.0.0.1:9092", "Kafka bootstrap servers (comma-separated)")
	topic := fs.String("topic", "out", "topic")
	idle := fs.Duration("idle", 3*time.Second, "stop after this long without a record")
	firstWait := fs.Duration("first-wait", 30*time.Second, "how long to wait for the first record")
	_ = fs.Parse(args)
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(strings.Split(*brokers, ",")...),
		kgo.ConsumeTopics(*topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), // what a downstream consumer sees
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	wait := max(*firstWait, *idle) // a loaded broker may take a while for the first fetch
	for {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		fetches := cl.PollFetches(ctx)
		cancel()
		if fetches.NumRecords() == 0 {
			return nil
		}
		wait = *idle
		fetches.EachRecord(func(r *kgo.Record) {
			line, _ := json.Marshal(map[string]any{"id": string(r.Key), "partition": r.Partition, "offset": r.Offset,
				"value": json.RawMessage(r.Value)})
			fmt.Println(string(line))
		})
	}
}
