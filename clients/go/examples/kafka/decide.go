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

// decide is the rule of ADR 0100: emit for PROCESSED, and for a DUPLICATE whose stored result
// names this very record (its earlier transaction did not commit); nothing for a DUPLICATE naming
// another record (a duplicate publish) or LEASE_LOST (the holder that took over emits); abort for
// IN_PROGRESS. It returns the output to emit, or why nothing is emitted.
func decide(outcome dedup.Outcome, r *kgo.Record) (step, []byte, string, error) {
	switch outcome.Status {
	case dedup.Processed, dedup.Duplicate:
		var s stored
		if err := json.Unmarshal(outcome.StoredResult, &s); err != nil || s.Topic == "" {
			return rewind, nil, "", fmt.Errorf("stored result %q: not {topic, partition, offset, output} (%v)",
				outcome.StoredResult, err)
		}
		if outcome.Status == dedup.Duplicate && !s.names(r) {
			return skip, nil, fmt.Sprintf("duplicate of %s/%d/%d", s.Topic, s.Partition, s.Offset), nil
		}
		return emit, s.Output, "", nil
	case dedup.LeaseLost:
		return skip, nil, "lease lost", nil
	case dedup.Conflict:
		return deadLetter, nil, "conflict", nil
	default: // IN_PROGRESS after the claim's wait: another consumer still holds it
		return rewind, nil, "in progress", nil
	}
}
