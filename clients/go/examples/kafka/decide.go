package main

import (
	"encoding/json"
	"fmt"

	dedup "github.com/dedup-sidecar/dedup/clients/go"
	"github.com/twmb/franz-go/pkg/kgo"
)

// step is what one record does inside the consumer's Kafka transaction.
type step int

const (
	emit       step = iota // produce the stored output to `out`; commit the offset
	skip                   // produce nothing; commit the offset
	deadLetter             // copy the record to `<in>.dead`; commit the offset
	rewind                 // abort the transaction: the record comes back
)

// decide is the rule of ADR 0100. The stored result names the one input record that emits the
// output (the record that applied the effect first). PROCESSED or DUPLICATE naming this very
// record: emit (again, if an earlier transaction of it did not commit); naming another record
// (a duplicate publish, a re-send after the window): emit nothing. LEASE_LOST: our commit was not
// recorded, so we cannot tell which record the final result names: abort, and the redelivery
// reads it. IN_PROGRESS: abort. It returns the output to emit, or why nothing is emitted.
func decide(outcome dedup.Outcome, r *kgo.Record) (step, []byte, string, error) {
	switch outcome.Status {
	case dedup.Processed, dedup.Duplicate:
		var s stored
		if err := json.Unmarshal(outcome.StoredResult, &s); err != nil || s.Topic == "" {
			return rewind, nil, "", fmt.Errorf("stored result %q: not {topic, partition, offset, output} (%v)",
				outcome.StoredResult, err)
		}
		if !s.names(r) {
			return skip, nil, fmt.Sprintf("emitted by %s/%d/%d", s.Topic, s.Partition, s.Offset), nil
		}
		return emit, s.Output, "", nil
	case dedup.Conflict:
		return deadLetter, nil, "conflict", nil
	case dedup.LeaseLost:
		return rewind, nil, "lease lost", nil
	default: // IN_PROGRESS after the claim's wait: another consumer still holds it
		return rewind, nil, "in progress", nil
	}
}
