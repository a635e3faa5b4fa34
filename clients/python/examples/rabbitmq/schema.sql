-- The sink recipes (docs/effectively-once.md) and the example's three effects.
-- The recipe tables, exactly as the client helpers expect them:
CREATE TABLE IF NOT EXISTS dedup_applied (
  namespace text NOT NULL,
  id bytea NOT NULL,
  token bigint NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (namespace, id)
);
CREATE TABLE IF NOT EXISTS dedup_fence (resource text PRIMARY KEY, token bigint NOT NULL);

-- The effects. One per kind of sink, so one run shows all three:
-- transactional: written in the same transaction as dedup_applied, only when it is the first;
CREATE TABLE IF NOT EXISTS order_effect (
  seq bigserial PRIMARY KEY, id text NOT NULL, token bigint NOT NULL, consumer text NOT NULL,
  at timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- fenced: written in the same transaction as the compare-and-set on dedup_fence, only when it passed;
CREATE TABLE IF NOT EXISTS order_fenced_write (
  seq bigserial PRIMARY KEY, id text NOT NULL, token bigint NOT NULL, consumer text NOT NULL,
  at timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- plain: an autocommit insert, like an e-mail or a call to a third-party API.
CREATE TABLE IF NOT EXISTS order_plain_effect (
  seq bigserial PRIMARY KEY, id text NOT NULL, token bigint NOT NULL, consumer text NOT NULL,
  at timestamptz NOT NULL DEFAULT clock_timestamp()
);
