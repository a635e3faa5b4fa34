package main

import (
	"encoding/json"
	"testing"

	dedup "github.com/dedup-sidecar/dedup/clients/go"
	"github.com/twmb/franz-go/pkg/kgo"
)

func result(t *testing.T, topic string, partition int32, offset int64) []byte {
	t.Helper()
	b, err := json.Marshal(stored{Topic: topic, Partition: partition, Offset: offset, Output: json.RawMessage(`{"id":"order-1"}`)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecide(t *testing.T) {
	r := &kgo.Record{Topic: "in", Partition: 2, Offset: 40}
	cases := []struct {
		name    string
		outcome dedup.Outcome
		want    step
	}{
		{"processed emits", dedup.Outcome{Status: dedup.Processed, StoredResult: result(t, "in", 2, 40)}, emit},
		{"duplicate naming this record re-emits", dedup.Outcome{Status: dedup.Duplicate, StoredResult: result(t, "in", 2, 40)}, emit},
		{"duplicate at another offset is skipped", dedup.Outcome{Status: dedup.Duplicate, StoredResult: result(t, "in", 2, 39)}, skip},
		{"duplicate in another partition is skipped", dedup.Outcome{Status: dedup.Duplicate, StoredResult: result(t, "in", 1, 40)}, skip},
		{"duplicate from another topic is skipped", dedup.Outcome{Status: dedup.Duplicate, StoredResult: result(t, "other", 2, 40)}, skip},
		{"processed naming another record (the first applier) is skipped", dedup.Outcome{Status: dedup.Processed, StoredResult: result(t, "in", 0, 7)}, skip},
		{"lease lost aborts (the redelivery reads the final result)", dedup.Outcome{Status: dedup.LeaseLost, StoredResult: result(t, "in", 2, 40)}, rewind},
		{"conflict goes to the dead letters", dedup.Outcome{Status: dedup.Conflict}, deadLetter},
		{"in progress aborts", dedup.Outcome{Status: dedup.InProgress}, rewind},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, output, _, err := decide(c.outcome, r)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("decide = %d, want %d", got, c.want)
			}
			if (got == emit) != (output != nil) {
				t.Fatalf("output %q with step %d", output, got)
			}
			if got == emit && string(output) != `{"id":"order-1"}` {
				t.Fatalf("emitted %q, want the stored output", output)
			}
		})
	}
}

func TestDecideRefusesAResultWithoutItsRecord(t *testing.T) {
	r := &kgo.Record{Topic: "in", Partition: 0, Offset: 1}
	for _, raw := range []string{"", "charged", `{"output":{}}`} {
		got, _, _, err := decide(dedup.Outcome{Status: dedup.Duplicate, StoredResult: []byte(raw)}, r)
		if err == nil || got != rewind {
			t.Fatalf("stored result %q: decide = %d, %v; want rewind and an error", raw, got, err)
		}
	}
}
