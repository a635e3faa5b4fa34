-- The transactional sink recipe (docs/effectively-once.md) and the Kafka example's effect.
CREATE TABLE IF NOT EXISTS dedup_applied (
  namespace text NOT NULL,
  id bytea NOT NULL,
  token bigint NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (namespace, id)
);
-- The effect, written in the same transaction as dedup_applied, only when that is the first.
-- `output` is what goes to the topic "out", and (emitter_topic, emitter_partition, emitter_offset)
-- the input record that emits it (the one applied first): every later holder of the id, even after
-- the sidecar's window, reads both back, so exactly one record emits the output.
CREATE TABLE IF NOT EXISTS kafka_effect (
  seq bigserial PRIMARY KEY, id text NOT NULL, token bigint NOT NULL, consumer text NOT NULL,
  output text NOT NULL, emitter_topic text NOT NULL, emitter_partition int NOT NULL,
  emitter_offset bigint NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp()
);
