package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// produceMain publishes -count orders keyed by id (idempotent producer, acks=all) and a
// second copy of -dup-rate of them, as an application retry after an unknown outcome would.
func produceMain(args []string) error {
	fs := flag.NewFlagSet("produce", flag.ExitOnError)
	brokers := fs.String("brokers", "127.0.0.1:9092", "Kafka bootstrap servers (comma-separated)")
	topic := fs.String("topic", "in", "topic")
	count := fs.Int("count", 1000, "orders to publish (ids order-0 .. order-N-1)")
	dupRate := fs.Float64("dup-rate", 0.05, "share of orders published twice")
	rate := fs.Float64("rate", 200, "orders per second (0: as fast as possible)")
	lateRate := fs.Float64("late-rate", 0, "share of orders re-sent once more at the end, after -late-after")
	lateAfter := fs.Duration("late-after", 0, "pause before the late re-sends")
	seed := fs.Uint64("seed", 1, "random seed")
	_ = fs.Parse(args)
	ctx := context.Background()
	seeds := strings.Split(*brokers, ",")
	if err := ensureTopics(ctx, seeds, *topic); err != nil {
		return err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(*topic))
	if err != nil {
		return err
	}
	defer cl.Close()
	rng := rand.New(rand.NewPCG(*seed, 14))
	started := time.Now()
	dups := 0
	var late []*kgo.Record
	for n := range *count {
		if *rate > 0 {
			time.Sleep(time.Until(started.Add(time.Duration(float64(n) / *rate * float64(time.Second)))))
		}
		id := fmt.Sprintf("order-%d", n)
		value, _ := json.Marshal(order{ID: id, Amount: int64(rng.IntN(10_000))})
		copies := 1
		if rng.Float64() < *dupRate {
			copies, dups = 2, dups+1
		}
		for range copies {
			r := &kgo.Record{Key: []byte(id), Value: value, Headers: []kgo.RecordHeader{{Key: "message-id", Value: []byte(id)}}}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				return fmt.Errorf("produce %s: %w", id, err)
			}
		}
		if rng.Float64() < *lateRate {
			late = append(late, &kgo.Record{Key: []byte(id), Value: value,
				Headers: []kgo.RecordHeader{{Key: "message-id", Value: []byte(id)}}})
		}
	}
	time.Sleep(*lateAfter)
	for _, r := range late {
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			return fmt.Errorf("produce %s: %w", r.Key, err)
		}
	}
	fmt.Printf("published %d orders, %d of them twice, %d re-sent after %s, in %.1fs\n", *count, dups, len(late),
		*lateAfter, time.Since(started).Seconds())
	return nil
}
