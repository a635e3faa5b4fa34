package main

import (
	"context"
	"database/sql"
)

// markApplied and advanceFence are the two sink recipes (docs/effectively-once.md),
// the same SQL as the client's dedup.MarkApplied and dedup.AdvanceFence.

// markApplied reports whether tx is the first to apply (namespace, id): run the effect then.
func markApplied(ctx context.Context, tx *sql.Tx, namespace string, id []byte, token uint64) (bool, error) {
	res, err := tx.ExecContext(ctx,
		"INSERT INTO dedup_applied (namespace, id, token) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
		namespace, id, int64(token))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// advanceFence is the compare-and-set: true when token >= the stored one (the write may proceed in tx).
func advanceFence(ctx context.Context, tx *sql.Tx, resource string, token uint64) (bool, error) {
	res, err := tx.ExecContext(ctx,
		"INSERT INTO dedup_fence (resource, token) VALUES ($1, $2) ON CONFLICT (resource) "+
			"DO UPDATE SET token = EXCLUDED.token WHERE dedup_fence.token <= EXCLUDED.token",
		resource, int64(token))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}
