-- The transactional sink recipe (docs/effectively-once.md) and the NATS example's effect.
CREATE TABLE IF NOT EXISTS dedup_applied (
  namespace text NOT NULL,
  id bytea NOT NULL,
  token bigint NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (namespace, id)
);
-- The effect, written in the same transaction as dedup_applied, only when that is the first.
CREATE TABLE IF NOT EXISTS nats_effect (
  seq bigserial PRIMARY KEY, id text NOT NULL, token bigint NOT NULL, consumer text NOT NULL,
  at timestamptz NOT NULL DEFAULT clock_timestamp()
);
