package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	dedup "github.com/dedup-sidecar/dedup/clients/go"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	leaseLength = 10 * time.Second       // > the longest handler pause we expect; renewed every third
	retryPause  = 200 * time.Millisecond // before polling again after an aborted transaction
	maxPoll     = 50                     // records per transaction
)

// stored is the result committed to the sidecar: the output and the record that emits it
// (the record that applied the effect first).
type stored struct {
	Topic     string          `json:"topic"`
	Partition int32           `json:"partition"`
	Offset    int64           `json:"offset"`
	Output    json.RawMessage `json:"output"`
}

func (s stored) names(r *kgo.Record) bool {
	return s.Topic == r.Topic && s.Partition == r.Partition && s.Offset == r.Offset
}

type order struct {
	ID     string `json:"id"`
	Amount int64  `json:"amount"`
}

type consumer struct {
	db        *sql.DB
	client    *dedup.Client
	sess      *kgo.GroupTransactSession
	namespace string
	name      string
	out       string
	dead      string
	ev        *events
}

// verdict says what the record does to the transaction in progress.
type verdict int

const (
	keep  verdict = iota // the transaction may commit this record's offset
	abort                // abort the transaction: the record comes back
)

// apply is the handler: the effect and dedup_applied in one PostgreSQL
// transaction. The first application records the output and this record as
// its emitter; any later holder (a redelivery, a duplicate publish, even after
// the sidecar's window) reads both back, so every holder stores the same result.
func (c *consumer) apply(ctx context.Context, r *kgo.Record, o order, lease *dedup.Lease) ([]byte, error) {
	token := lease.Token()
	c.ev.log("claimed", map[string]any{"id": o.ID, "token": token, "partition": r.Partition, "offset": r.Offset})
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	first, err := dedup.MarkApplied(ctx, tx, c.namespace, []byte(o.ID), token)
	if err != nil {
		return nil, err
	}
	s := stored{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
	var output []byte
	if first {
		output, _ = json.Marshal(map[string]any{"id": o.ID, "charged": o.Amount, "by": c.name, "token": token})
		_, err = tx.ExecContext(ctx, `INSERT INTO kafka_effect (id, token, consumer, output, emitter_topic,
			emitter_partition, emitter_offset) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			o.ID, int64(token), c.name, string(output), r.Topic, r.Partition, r.Offset)
	} else {
		err = tx.QueryRowContext(ctx, `SELECT output, emitter_topic, emitter_partition, emitter_offset
			FROM kafka_effect WHERE id = $1`, o.ID).Scan(&output, &s.Topic, &s.Partition, &s.Offset)
	}
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	c.ev.log("tx", map[string]any{"id": o.ID, "token": token, "first": first})
	s.Output = output
	return json.Marshal(s)
}

// handle runs one record through the helper and adds its output (if any) to the Kafka transaction.
func (c *consumer) handle(ctx context.Context, r *kgo.Record) (verdict, error) {
	var o order
	if err := json.Unmarshal(r.Value, &o); err != nil || o.ID == "" {
		c.produce(ctx, &kgo.Record{Topic: c.dead, Key: r.Key, Value: r.Value, Headers: r.Headers})
		return keep, nil // a poison record goes to the dead letters, its offset is committed
	}
	outcome, err := c.client.Once(ctx, c.namespace, []byte(o.ID), func(ctx context.Context, l *dedup.Lease) ([]byte, error) {
		return c.apply(ctx, r, o, l)
	}, dedup.OnceLease(leaseLength))
	if err != nil { // released (handler error) or the sidecar unreachable: the redelivery decides
		c.ev.log("error", map[string]any{"id": o.ID, "kind": fmt.Sprintf("%T", err), "msg": err.Error()})
		return abort, nil
	}
	c.ev.log("outcome", map[string]any{"id": o.ID, "status": string(outcome.Status), "token": outcome.FencingToken,
		"partition": r.Partition, "offset": r.Offset})
	next, output, why, err := decide(outcome, r)
	switch next {
	case emit:
		c.produce(ctx, &kgo.Record{Topic: c.out, Key: []byte(o.ID), Value: output,
			Headers: []kgo.RecordHeader{{Key: "message-id", Value: []byte(o.ID)}}})
		c.ev.log("emit", map[string]any{"id": o.ID, "partition": r.Partition, "offset": r.Offset})
		return keep, nil
	case skip:
		c.ev.log("skip", map[string]any{"id": o.ID, "why": why})
		return keep, nil
	case deadLetter:
		c.produce(ctx, &kgo.Record{Topic: c.dead, Key: r.Key, Value: r.Value, Headers: r.Headers})
		return keep, nil
	default:
		return abort, err
	}
}

func (c *consumer) produce(ctx context.Context, r *kgo.Record) {
	c.sess.Produce(ctx, r, nil) // a failed produce fails the transaction's End (Flush), which then aborts
}

// batch handles one poll in one Kafka transaction.
func (c *consumer) batch(ctx context.Context, fetches kgo.Fetches) error {
	if err := c.sess.Begin(); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	try := kgo.TryCommit
	var firstErr error
	fetches.EachRecord(func(r *kgo.Record) {
		if try == kgo.TryAbort {
			return
		}
		v, err := c.handle(ctx, r)
		if err != nil {
			firstErr = err
		}
		if v == abort || err != nil {
			try = kgo.TryAbort
		}
	})
	committed, err := c.sess.End(ctx, try)
	c.ev.log("txn", map[string]any{"records": fetches.NumRecords(), "committed": committed, "tried": bool(try)})
	if err != nil {
		return fmt.Errorf("end: %w", err)
	}
	if !committed {
		time.Sleep(retryPause) // rewound to the committed offsets: the records come back
	}
	return firstErr
}

func consumeMain(args []string) error {
	fs := flag.NewFlagSet("consume", flag.ExitOnError)
	brokers := fs.String("brokers", "127.0.0.1:9092", "Kafka bootstrap servers (comma-separated)")
	in := fs.String("in", "in", "input topic")
	out := fs.String("out", "out", "output topic")
	group := fs.String("group", "orders", "consumer group")
	txnID := fs.String("txn-id", "", "transactional id, stable per consumer slot (a restart fences its predecessor's open transaction); default: -name")
	target := fs.String("target", "127.0.0.1:50051", "the dedup sidecar (host:port or unix:/path)")
	pgDSN := fs.String("pg-dsn", "postgres://postgres@127.0.0.1:5432/orders", "PostgreSQL DSN")
	namespace := fs.String("namespace", "orders.kafka", "dedup namespace")
	name := fs.String("name", fmt.Sprintf("go-%d", os.Getpid()), "this consumer's name in the effect rows")
	eventsPath := fs.String("events", "", "append one JSON line per step to this file")
	_ = fs.Parse(args)
	if *txnID == "" {
		*txnID = *name
	}
	ev, err := openEvents(*eventsPath, *name)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	seeds := strings.Split(*brokers, ",")
	if err := ensureTopics(ctx, seeds, *in, *out, *in+".dead"); err != nil {
		return err
	}
	db, err := sql.Open("pgx", *pgDSN)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(2)
	client, err := dedup.New(*target)
	if err != nil {
		return err
	}
	defer client.Close()
	sess, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(seeds...),
		kgo.ConsumerGroup(*group),
		kgo.ConsumeTopics(*in),
		kgo.TransactionalID(*txnID),
		kgo.TransactionTimeout(20*time.Second),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), // never act on an aborted upstream record
		kgo.RequireStableFetchOffsets(),              // wait for a predecessor's pending offset commit
		kgo.SessionTimeout(6*time.Second),            // a killed consumer's partitions move after ~6 s
		kgo.RebalanceTimeout(20*time.Second),
		kgo.FetchMaxWait(500*time.Millisecond),
	)
	if err != nil {
		return err
	}
	defer sess.Close()
	c := &consumer{db: db, client: client, sess: sess, namespace: *namespace, name: *name, out: *out,
		dead: *in + ".dead", ev: ev}
	ev.log("start", nil)
	fmt.Printf("%s: consuming %s -> %s (group %s)\n", *name, *in, *out, *group)
	for {
		fetches := sess.PollRecords(ctx, maxPoll)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(t string, p int32, err error) {
			fmt.Fprintf(os.Stderr, "%s: fetch %s/%d: %v\n", *name, t, p, err)
		})
		if fetches.NumRecords() == 0 {
			continue
		}
		if err := c.batch(ctx, fetches); err != nil {
			if errors.Is(err, context.Canceled) {
				return nil
			}
			fmt.Fprintf(os.Stderr, "%s: %v\n", *name, err)
		}
	}
}
