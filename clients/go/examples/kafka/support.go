package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// events appends one JSON line per step with a single write (survives SIGKILL line by line).
type events struct {
	mu       sync.Mutex
	f        *os.File
	consumer string
}

func openEvents(path, consumer string) (*events, error) {
	ev := &events{consumer: consumer}
	if path == "" {
		return ev, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	ev.f = f
	return ev, nil
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

// ensureTopics creates the topics (4 partitions, replication factor 1) unless they exist.
func ensureTopics(ctx context.Context, seeds []string, topics ...string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return err
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopics(ctx, 4, 1, nil, topics...)
	if err != nil {
		return err
	}
	for _, t := range resp.Sorted() {
		if t.Err != nil && !errors.Is(t.Err, kerr.TopicAlreadyExists) {
			return t.Err
		}
	}
	return nil
}
