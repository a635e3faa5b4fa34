// Command kafka is a Kafka read-process-write consumer that applies each order
// effectively once with the dedup client's Once helper (franz-go, a consumer
// group, offsets committed in Kafka transactions).
//
//	go run . consume -brokers 127.0.0.1:9092 -target 127.0.0.1:50051 \
//	    -pg-dsn postgres://postgres@127.0.0.1:5432/orders -txn-id consumer-1
//	go run . produce -brokers 127.0.0.1:9092 -count 1000 -dup-rate 0.05
//	go run . read-out -brokers 127.0.0.1:9092
//
// consume: topic "in" -> the transactional sink (MarkApplied + the effect row in
// one PostgreSQL transaction) -> topic "out", the output and the input offset
// in one Kafka transaction. The effect row keeps the output and the input record
// that applied it first (its emitter); every holder stores both as its result.
// The rule (docs/brokers.md, Kafka; ADR 0100):
//   - PROCESSED or DUPLICATE whose stored result names this very record (topic,
//     partition, offset): emit the stored output (again, when an earlier
//     transaction of this record did not commit);
//   - PROCESSED or DUPLICATE naming another record (a duplicate publish, or a
//     re-send after the sidecar's window): emit nothing, commit the offset;
//   - LEASE_LOST, IN_PROGRESS or an error: abort the Kafka transaction (the
//     session rewinds to the committed offsets) and poll again after a pause;
//   - CONFLICT: copy the record to "<in>.dead" in the transaction.
//
// produce: publishes -count orders keyed by id, and publishes -dup-rate of them
// a second time at once and -late-rate once more after -late-after (an
// application retry after an unknown outcome, an outbox re-sent after a
// restart): new offsets, which Kafka's idempotent producer does not remove.
//
// read-out: reads "out" with read_committed from the start and prints one JSON
// line per record (id, partition, offset, value).
//
// lag: prints how many records of "in" the group has not committed yet.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kafka consume|produce|read-out|lag [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "consume":
		err = consumeMain(os.Args[2:])
	case "produce":
		err = produceMain(os.Args[2:])
	case "read-out":
		err = readOutMain(os.Args[2:])
	case "lag":
		err = lagMain(os.Args[2:])
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q: consume|produce|read-out|lag\n", os.Args[1])
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
