package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// lagMain prints how many records of -topic the consumer group has not committed yet.
func lagMain(args []string) error {
	fs := flag.NewFlagSet("lag", flag.ExitOnError)
	brokers := fs.String("brokers", "127.0.0.1:9092", "Kafka bootstrap servers (comma-separated)")
	group := fs.String("group", "orders", "consumer group")
	topic := fs.String("topic", "in", "topic")
	_ = fs.Parse(args)
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(*brokers, ",")...))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lags, err := kadm.NewClient(cl).Lag(ctx, *group)
	if err != nil {
		return err
	}
	if err := lags.Error(); err != nil {
		return err
	}
	total := int64(0)
	for _, l := range lags.Sorted() {
		total += l.Lag.TotalByTopic()[*topic].Lag
	}
	fmt.Println(total)
	return nil
}
