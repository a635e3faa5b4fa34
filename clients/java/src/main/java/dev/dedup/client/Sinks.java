package dev.dedup.client;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.SQLException;

/**
 * The sink recipes of docs/adr/0013, over plain JDBC (no dependency): call them on the
 * {@link Connection} of the transaction that carries the effect (auto-commit off).
 *
 * <ul>
 *   <li><b>Transactional sink</b>: {@link #markApplied} inserts {@code (namespace, id, token)} into
 *       {@code dedup_applied} with {@code ON CONFLICT DO NOTHING}; true means this transaction is the
 *       first: run the effect in it and commit; false means it was applied before: skip the effect
 *       (the helper still commits the id). Exactly once, whatever fails.
 *   <li><b>Fenced resource</b>: {@link #advanceFence} moves {@code dedup_fence.token} of a resource up
 *       to the lease's token; true means the write may proceed (in the same transaction); false
 *       means a newer holder already wrote: skip it.
 * </ul>
 *
 * The DDL is PostgreSQL's; the statements are standard upserts that SQLite 3.24+ runs too.
 */
public final class Sinks {
  private Sinks() {}

  /** {@code dedup_applied}: one row per applied (namespace, id). */
  public static final String APPLIED_DDL =
      "CREATE TABLE IF NOT EXISTS dedup_applied (namespace text NOT NULL, id bytea NOT NULL, token bigint NOT NULL,"
          + " applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (namespace, id))";

  /** {@code dedup_fence}: the highest token that wrote to each resource. */
  public static final String FENCE_DDL =
      "CREATE TABLE IF NOT EXISTS dedup_fence (resource text PRIMARY KEY, token bigint NOT NULL)";

  static final String MARK_APPLIED_SQL =
      "INSERT INTO dedup_applied (namespace, id, token) VALUES (?, ?, ?) ON CONFLICT DO NOTHING";

  static final String ADVANCE_FENCE_SQL =
      "INSERT INTO dedup_fence (resource, token) VALUES (?, ?) ON CONFLICT (resource) DO UPDATE"
          + " SET token = EXCLUDED.token WHERE dedup_fence.token <= EXCLUDED.token";

  /**
   * Records that {@code (namespace, id)} is applied under {@code token}, in the caller's
   * transaction. True: this transaction is the first to apply it (run the effect); false: it was
   * applied before (skip the effect).
   */
  public static boolean markApplied(Connection tx, String namespace, byte[] id, long token) throws SQLException {
    try (PreparedStatement st = tx.prepareStatement(MARK_APPLIED_SQL)) {
      st.setString(1, namespace);
      st.setBytes(2, id);
      st.setLong(3, token);
      return st.executeUpdate() == 1;
    }
  }

  /**
   * Compare-and-set of {@code resource}'s fence to {@code token}, in the caller's transaction. True:
   * the token is at least the stored one (the write may proceed); false: a newer holder wrote.
   */
  public static boolean advanceFence(Connection tx, String resource, long token) throws SQLException {
    try (PreparedStatement st = tx.prepareStatement(ADVANCE_FENCE_SQL)) {
      st.setString(1, resource);
      st.setLong(2, token);
      return st.executeUpdate() == 1;
    }
  }
}
