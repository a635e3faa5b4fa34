package dedup_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite" // a pure-Go SQLite driver: test-only

	dedup "github.com/dedup-sidecar/dedup/clients/go"
)

// The sink recipes on a real database (SQLite, in a file per test).

func sqliteDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "sink.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	db.SetMaxOpenConns(1)
	for _, ddl := range []string{dedup.SQLiteAppliedDDL, dedup.SQLiteFenceDDL,
		`CREATE TABLE charges (id TEXT PRIMARY KEY, amount INTEGER NOT NULL)`,
		`CREATE TABLE balance (account TEXT PRIMARY KEY, amount INTEGER NOT NULL, token INTEGER NOT NULL)`} {
		if _, err := db.Exec(ddl); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// inTx runs fn in a transaction, committed when fn returns nil, else rolled back.
func inTx(t *testing.T, db *sql.DB, fn func(tx *sql.Tx) error) error {
	t.Helper()
	tx, err := db.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

var q = dedup.QuestionMarks()

func TestMarkAppliedIsTrueOnlyForTheFirstCommittedTransaction(t *testing.T) {
	db, ctx := sqliteDB(t), context.Background()
	mark := func(ns, id string, token uint64, rollback bool) bool {
		var first bool
		err := inTx(t, db, func(tx *sql.Tx) error {
			var err error
			first, err = dedup.MarkApplied(ctx, tx, ns, []byte(id), token, q)
			if err == nil && rollback {
				err = errors.New("the effect failed")
			}
			return err
		})
		if err != nil && !rollback {
			t.Fatal(err)
		}
		return first
	}
	if !mark("payments", "m-1", 7, true) {
		t.Fatal("first try (rolled back) not first")
	}
	if !mark("payments", "m-1", 8, false) { // the rollback left no row
		t.Fatal("redelivery after a rollback not first")
	}
	if mark("payments", "m-1", 9, false) {
		t.Fatal("applied twice")
	}
	if !mark("refunds", "m-1", 9, false) {
		t.Fatal("another namespace shares the row")
	}
	var token int64
	if err := db.QueryRow(`SELECT token FROM dedup_applied WHERE namespace = 'payments' AND id = ?`, []byte("m-1")).Scan(&token); err != nil || token != 8 {
		t.Fatalf("stored token %d %v", token, err)
	}
}

func TestAdvanceFenceAcceptsOnlyTokensNotBelowTheStoredOne(t *testing.T) {
	db, ctx := sqliteDB(t), context.Background()
	advance := func(token uint64) bool {
		var ok bool
		if err := inTx(t, db, func(tx *sql.Tx) error {
			var err error
			ok, err = dedup.AdvanceFence(ctx, tx, "account-1", token, q)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for _, step := range []struct {
		token uint64
		want  bool
	}{{5, true}, {7, true}, {6, false}, {7, true}, {3, false}, {8, true}} {
		if got := advance(step.token); got != step.want {
			t.Fatalf("token %d: got %v want %v", step.token, got, step.want)
		}
	}
	var token int64
	if err := db.QueryRow(`SELECT token FROM dedup_fence WHERE resource = 'account-1'`).Scan(&token); err != nil || token != 8 {
		t.Fatalf("stored %d %v", token, err)
	}
}

func TestSinkTableOption(t *testing.T) {
	db, ctx := sqliteDB(t), context.Background()
	if _, err := db.Exec(`CREATE TABLE orders_applied (namespace TEXT NOT NULL, id BLOB NOT NULL, token INTEGER NOT NULL, PRIMARY KEY (namespace, id))`); err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, false} {
		var first bool
		if err := inTx(t, db, func(tx *sql.Tx) error {
			var err error
			first, err = dedup.MarkApplied(ctx, tx, "orders", []byte("o-1"), 1, q, dedup.SinkTable("orders_applied"))
			return err
		}); err != nil || first != want {
			t.Fatalf("try %d: %v %v", i, first, err)
		}
	}
}

// The transactional recipe with the helper on the live sidecar: a commit that
// was not recorded (the record is gone, as after a crash between the
// database commit and Commit) makes the redelivery run the handler again, and
// MarkApplied keeps the effect from happening twice.
func TestTransactionalSinkWithOnceAppliesTheEffectOnce(t *testing.T) {
	c := liveClient(t)
	db, ctx, id := sqliteDB(t), context.Background(), freshID()
	handler := func(ctx context.Context, lease *dedup.Lease) ([]byte, error) {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return nil, err
		}
		defer func() { _ = tx.Rollback() }()
		first, err := dedup.MarkApplied(ctx, tx, ns, id, lease.Token(), q)
		if err != nil {
			return nil, err
		}
		if first { // the effect, in the same transaction
			if _, err := tx.ExecContext(ctx, `INSERT INTO charges (id, amount) VALUES (?, 100)`, string(id)); err != nil {
				return nil, err
			}
		}
		return nil, tx.Commit()
	}
	for i := range 2 {
		o, err := c.Once(ctx, ns, id, handler)
		if err != nil || o.Status != dedup.Processed {
			t.Fatalf("delivery %d: %+v %v", i, o, err)
		}
		if _, err := c.Forget(ctx, ns, id); err != nil { // the commit "was not recorded"
			t.Fatal(err)
		}
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM charges`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("charges %d %v", n, err)
	}
}

// The fenced recipe: a stale holder (an older token) cannot overwrite what a
// newer holder wrote.
func TestFencedSinkRejectsAStaleHolder(t *testing.T) {
	db, ctx := sqliteDB(t), context.Background()
	write := func(token uint64, amount int) bool {
		var ok bool
		if err := inTx(t, db, func(tx *sql.Tx) error {
			var err error
			if ok, err = dedup.AdvanceFence(ctx, tx, "balance/acc-1", token, q); err != nil || !ok {
				return err
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO balance (account, amount, token) VALUES ('acc-1', ?, ?)
				ON CONFLICT (account) DO UPDATE SET amount = excluded.amount, token = excluded.token`, amount, int64(token))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !write(10, 50) || write(9, 999) { // the new holder (10) wrote first; the stale one (9) resumes
		t.Fatal("fence")
	}
	var amount int
	if err := db.QueryRow(`SELECT amount FROM balance WHERE account = 'acc-1'`).Scan(&amount); err != nil || amount != 50 {
		t.Fatalf("amount %d %v", amount, err)
	}
}
