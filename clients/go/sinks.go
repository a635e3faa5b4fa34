package dedup

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"strings"
)

// The sink recipes (docs/adr/0013-helper-rules.md), over database/sql with
// no driver dependency: call them inside the transaction that carries the
// effect, with the lease's fencing token.

// AppliedDDL creates the transactional sink's table (PostgreSQL).
const AppliedDDL = `CREATE TABLE IF NOT EXISTS dedup_applied (namespace text NOT NULL, id bytea NOT NULL, token bigint NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (namespace, id))`

// FenceDDL creates the fenced resource's table (PostgreSQL).
const FenceDDL = `CREATE TABLE IF NOT EXISTS dedup_fence (resource text PRIMARY KEY, token bigint NOT NULL)`

// SQLiteAppliedDDL is AppliedDDL for SQLite (3.24+, for ON CONFLICT).
const SQLiteAppliedDDL = `CREATE TABLE IF NOT EXISTS dedup_applied (namespace TEXT NOT NULL, id BLOB NOT NULL, token INTEGER NOT NULL, applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (namespace, id))`

// SQLiteFenceDDL is FenceDDL for SQLite.
const SQLiteFenceDDL = `CREATE TABLE IF NOT EXISTS dedup_fence (resource TEXT PRIMARY KEY, token INTEGER NOT NULL)`

// SinkOption adapts the sink helpers' SQL to a driver or schema.
type SinkOption func(*sinkConfig)

type sinkConfig struct {
	question bool
	table    string
}

// QuestionMarks makes the helpers use ? placeholders (SQLite, MySQL-style
// drivers) instead of PostgreSQL's $1, $2, ...
func QuestionMarks() SinkOption { return func(c *sinkConfig) { c.question = true } }

// SinkTable uses another table name than dedup_applied (MarkApplied) or
// dedup_fence (AdvanceFence), with the same columns. It is put into the SQL
// as is: pass a constant, never user input.
func SinkTable(name string) SinkOption { return func(c *sinkConfig) { c.table = name } }

func sinkSQL(query, table string, opts []SinkOption) string {
	var c sinkConfig
	for _, o := range opts {
		o(&c)
	}
	if c.table != "" {
		query = strings.ReplaceAll(query, table, c.table)
	}
	if c.question {
		for i := 9; i >= 1; i-- {
			query = strings.ReplaceAll(query, fmt.Sprintf("$%d", i), "?")
		}
	}
	return query
}

func tokenParam(token uint64) (int64, error) {
	if token > math.MaxInt64 {
		return 0, fmt.Errorf("dedup: fencing token %d does not fit a bigint", token)
	}
	return int64(token), nil
}

// MarkApplied records (namespace, id) as applied in tx, the transaction that
// also carries the effect: true when this transaction is the first to apply
// it (run the effect, then commit tx), false when it was applied before (skip
// the effect; Once still commits). Effect and record commit or roll back
// together, so the effect happens exactly once whatever fails.
//
//	INSERT INTO dedup_applied (namespace, id, token) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING
func MarkApplied(ctx context.Context, tx *sql.Tx, namespace string, id []byte, token uint64, opts ...SinkOption) (bool, error) {
	t, err := tokenParam(token)
	if err != nil {
		return false, err
	}
	query := sinkSQL("INSERT INTO dedup_applied (namespace, id, token) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
		"dedup_applied", opts)
	return oneRow(tx.ExecContext(ctx, query, namespace, id, t))
}

// AdvanceFence is the fenced resource's compare-and-set: it stores token for
// resource when no greater token is stored, in tx. True = this holder may
// write the resource (in the same transaction); false = a newer holder wrote
// it already: do not write.
//
//	INSERT INTO dedup_fence (resource, token) VALUES ($1, $2)
//	ON CONFLICT (resource) DO UPDATE SET token = EXCLUDED.token WHERE dedup_fence.token <= EXCLUDED.token
func AdvanceFence(ctx context.Context, tx *sql.Tx, resource string, token uint64, opts ...SinkOption) (bool, error) {
	t, err := tokenParam(token)
	if err != nil {
		return false, err
	}
	query := sinkSQL("INSERT INTO dedup_fence (resource, token) VALUES ($1, $2) ON CONFLICT (resource) DO UPDATE "+
		"SET token = EXCLUDED.token WHERE dedup_fence.token <= EXCLUDED.token", "dedup_fence", opts)
	return oneRow(tx.ExecContext(ctx, query, resource, t))
}

func oneRow(res sql.Result, err error) (bool, error) {
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	return n == 1, nil
}
