// Command rabbitmq is a RabbitMQ consumer that applies each order effectively
// once with the dedup client's Once helper.
//
//	go run . -amqp-url amqp://guest:guest@127.0.0.1:5672/ -target 127.0.0.1:50051 \
//	    -pg-dsn postgres://postgres@127.0.0.1:5432/orders
//
// Manual acks, prefetch 20, a 5 s lease. Per message the handler applies three
// sinks (docs/effectively-once.md):
//  1. transactional: MarkApplied + the effect row in one PostgreSQL transaction (exactly once);
//  2. fenced: AdvanceFence on the order's resource + the write, in one transaction (no stale write);
//  3. plain: an autocommit insert, right after lease.Ensure (the crash window only).
//
// The helper's outcome decides the AMQP action: ack, nack with requeue, or
// reject to the dead letters. -events writes one JSON line per step (for
// tests/pipeline, which derives the causes of duplicates from them).
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	dedup "github.com/dedup-sidecar/dedup/clients/go"
	_ "github.com/jackc/pgx/v5/stdlib"
	amqp "github.com/rabbitmq/amqp091-go"
)

const (
	leaseLength = 5 * time.Second
	prefetch    = 20
	retryPause  = 200 * time.Millisecond // before a nack, so a message in progress elsewhere does not spin
)

// events appends one JSON line per step with a single write (survives SIGKILL line by line).
type events struct {
	mu       sync.Mutex
	f        *os.File
	consumer string
}

func (e *events) log(event string, fields map[string]any) {
	if e.f == nil {
		return
	}
	line := map[string]any{"t": float64(time.Now().UnixNano()) / 1e9, "c": e.consumer, "pid": os.Getpid(), "e": event}
	for k, v := range fields {
		line[k] = v
	}
	b, _ := json.Marshal(line)
	e.mu.Lock()
	defer e.mu.Unlock()
	_, _ = e.f.Write(append(b, '\n'))
}

type consumer struct {
	db        *sql.DB
	client    *dedup.Client
	namespace string
	name      string
	ev        *events
}

// apply is the handler: three sinks. An error here releases the lease (nothing committed).
func (c *consumer) apply(ctx context.Context, orderID string, lease *dedup.Lease) error {
	token := lease.Token()
	c.ev.log("claimed", map[string]any{"id": orderID, "token": token})
	// 1. transactional sink: exactly once.
	first, err := c.inTx(ctx, func(tx *sql.Tx) (bool, error) {
		first, err := dedup.MarkApplied(ctx, tx, c.namespace, []byte(orderID), token)
		if err != nil || !first {
			return first, err
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO order_effect (id, token, consumer) VALUES ($1, $2, $3)",
			orderID, int64(token), c.name)
		return true, err
	})
	if err != nil {
		return err
	}
	c.ev.log("tx", map[string]any{"id": orderID, "token": token, "first": first})
	// 2. fenced resource: no stale overwrite.
	fresh, err := c.inTx(ctx, func(tx *sql.Tx) (bool, error) {
		ok, err := dedup.AdvanceFence(ctx, tx, "order/"+orderID, token)
		if err != nil || !ok {
			return ok, err
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO order_fenced_write (id, token, consumer) VALUES ($1, $2, $3)",
			orderID, int64(token), c.name)
		return true, err
	})
	if err != nil {
		return err
	}
	c.ev.log("fenced", map[string]any{"id": orderID, "token": token, "ok": fresh})
	// 3. plain effect: cannot be fenced, so make sure the lease is still ours right before it.
	if err := lease.Ensure(ctx); err != nil { // a synchronous Renew: ErrLeaseLost if another holder may have taken over
		if errors.Is(err, dedup.ErrLeaseLost) {
			c.ev.log("lease_gone", map[string]any{"id": orderID, "token": token})
		}
		return err
	}
	c.ev.log("ensured", map[string]any{"id": orderID, "token": token})
	if _, err := c.db.ExecContext(ctx, "INSERT INTO order_plain_effect (id, token, consumer) VALUES ($1, $2, $3)",
		orderID, int64(token), c.name); err != nil {
		return err
	}
	c.ev.log("plain", map[string]any{"id": orderID, "token": token})
	return nil
}

func (c *consumer) inTx(ctx context.Context, body func(*sql.Tx) (bool, error)) (bool, error) {
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	ok, err := body(tx)
	if err != nil {
		_ = tx.Rollback()
		return false, err
	}
	return ok, tx.Commit()
}

// handle runs one delivery through the helper and tells the broker what to do.
func (c *consumer) handle(ctx context.Context, d amqp.Delivery) error {
	orderID := d.MessageId
	outcome, err := c.client.Once(ctx, c.namespace, []byte(orderID), func(ctx context.Context, l *dedup.Lease) ([]byte, error) {
		return nil, c.apply(ctx, orderID, l)
	}, dedup.OnceLease(leaseLength))
	if err != nil { // released (handler error) or the sidecar unreachable: the redelivery decides
		kind := fmt.Sprintf("%T", err)
		if errors.Is(err, dedup.ErrLeaseLost) {
			kind = "ErrLeaseLost"
		}
		c.ev.log("error", map[string]any{"id": orderID, "kind": kind, "msg": err.Error()})
		time.Sleep(retryPause)
		return d.Nack(false, true)
	}
	c.ev.log("outcome", map[string]any{"id": orderID, "status": string(outcome.Status), "token": outcome.FencingToken})
	switch outcome.Action() {
	case dedup.Ack: // PROCESSED, DUPLICATE, LEASE_LOST
		if err := d.Ack(false); err != nil {
			return err
		}
		c.ev.log("acked", map[string]any{"id": orderID})
		return nil
	case dedup.DeadLetter: // CONFLICT: the same id with other content
		return d.Reject(false)
	default: // NACK (IN_PROGRESS after the claim's wait): another consumer still holds it
		time.Sleep(min(outcome.RetryAfter, retryPause))
		return d.Nack(false, true)
	}
}

func main() {
	amqpURL := flag.String("amqp-url", "amqp://guest:guest@127.0.0.1:5672/", "RabbitMQ URL")
	queue := flag.String("queue", "orders", "queue to consume")
	target := flag.String("target", "127.0.0.1:50051", "the dedup sidecar (host:port or unix:/path)")
	pgDSN := flag.String("pg-dsn", "postgres://postgres@127.0.0.1:5432/orders", "PostgreSQL DSN")
	namespace := flag.String("namespace", "orders.apply", "dedup namespace")
	name := flag.String("name", fmt.Sprintf("go-%d", os.Getpid()), "this consumer's name in the effect rows")
	heartbeat := flag.Duration("heartbeat", 5*time.Second, "AMQP heartbeat: a stuck consumer's messages go back to the queue after about two")
	eventsPath := flag.String("events", "", "append one JSON line per step to this file")
	flag.Parse()

	ev := &events{consumer: *name}
	if *eventsPath != "" {
		f, err := os.OpenFile(*eventsPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			log.Fatal(err)
		}
		ev.f = f
	}
	db, err := sql.Open("pgx", *pgDSN)
	if err != nil {
		log.Fatal(err)
	}
	db.SetMaxOpenConns(2)
	client, err := dedup.New(*target)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	conn, err := amqp.DialConfig(*amqpURL, amqp.Config{Heartbeat: *heartbeat})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		log.Fatal(err)
	}
	if _, err := ch.QueueDeclare(*queue, true, false, false, false, nil); err != nil {
		log.Fatal(err)
	}
	if err := ch.Qos(prefetch, 0, false); err != nil {
		log.Fatal(err)
	}
	deliveries, err := ch.Consume(*queue, *name, false, false, false, false, nil)
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := &consumer{db: db, client: client, namespace: *namespace, name: *name, ev: ev}
	ev.log("start", nil)
	fmt.Printf("%s: consuming %s\n", *name, *queue)
	for {
		select {
		case <-ctx.Done():
			return
		case d, ok := <-deliveries:
			if !ok {
				log.Fatal("the broker closed the channel")
			}
			if err := c.handle(ctx, d); err != nil {
				log.Fatalf("ack/nack: %v", err)
			}
		}
	}
}
