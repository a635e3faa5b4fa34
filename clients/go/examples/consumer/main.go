// Command consumer is an example consumer: an in-process queue that redelivers
// messages (at-least-once), deduplicated by the sidecar with Client.Once.
//
//	go run ./examples/consumer -target 127.0.0.1:50051
//
// It publishes -unique messages, redelivers a share of them (-redeliveries),
// and one handler fails once so its message is nacked, released and processed
// on redelivery. It prints how many were processed and how many duplicates
// were skipped; processed == unique.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	dedup "github.com/dedup-sidecar/dedup/clients/go"
)

type message struct{ id, body string }

// queue delivers at least once: some messages come again, and a nacked one always does.
type queue struct{ pending []message }

func (q *queue) receive() (message, bool) {
	if len(q.pending) == 0 {
		return message{}, false
	}
	m := q.pending[0]
	q.pending = q.pending[1:]
	return m, true
}

func (q *queue) nack(m message) { q.pending = append(q.pending, m) }

func main() {
	target := flag.String("target", "127.0.0.1:50051", "sidecar address (host:port or unix:/path)")
	namespace := flag.String("namespace", "example.orders", "dedup namespace")
	unique := flag.Int("unique", 100, "distinct messages")
	redeliveries := flag.Int("redeliveries", 40, "extra deliveries of random messages")
	flag.Parse()

	client, err := dedup.New(*target)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	defer client.Close()

	rng := rand.New(rand.NewPCG(7, 7))
	run := time.Now().UnixNano() // fresh ids per run, so the example can be run again
	var messages []message
	for n := range *unique {
		messages = append(messages, message{fmt.Sprintf("order-%d-%d", run, n), fmt.Sprintf("order #%d", n)})
	}
	q := &queue{pending: append([]message{}, messages...)}
	for range *redeliveries {
		q.pending = append(q.pending, messages[rng.IntN(len(messages))])
	}
	rng.Shuffle(len(q.pending), func(i, j int) { q.pending[i], q.pending[j] = q.pending[j], q.pending[i] })

	failOnce := map[string]bool{messages[0].id: true}
	effects := map[string]int{}
	var processed, skipped, failed int
	ctx := context.Background()
	for {
		m, ok := q.receive()
		if !ok {
			break
		}
		outcome, err := client.Once(ctx, *namespace, []byte(m.id), func(ctx context.Context, lease *dedup.Lease) ([]byte, error) {
			if failOnce[m.id] {
				delete(failOnce, m.id)
				return nil, errors.New("payment provider timed out")
			}
			effects[m.id]++ // the side effect, e.g. charging a card
			return []byte(fmt.Sprintf("receipt for %s (token %d)", m.body, lease.Token())), nil
		}, dedup.OnceLease(10*time.Second))
		if err != nil {
			failed++
			q.nack(m) // released by Once: the redelivery can proceed at once
			continue
		}
		switch outcome.Status {
		case dedup.Processed:
			processed++
		case dedup.Duplicate:
			skipped++
		}
		switch outcome.Action() {
		case dedup.Nack: // IN_PROGRESS elsewhere: try again later
			q.nack(m)
		case dedup.DeadLetter: // CONFLICT: the same id with other content, an upstream bug
			fmt.Fprintf(os.Stderr, "dead-letter %s\n", m.id)
		case dedup.Ack:
		}
	}
	most := 0
	for _, n := range effects {
		most = max(most, n)
	}
	fmt.Printf("processed=%d duplicates_skipped=%d failed_then_redelivered=%d unique=%d max_effects_per_message=%d\n",
		processed, skipped, failed, *unique, most)
	if processed != *unique || most != 1 {
		os.Exit(1)
	}
}
