package dev.dedup.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The sink recipes on a real SQL database (SQLite through its JDBC driver, a file per test). The
 * DDL is PostgreSQL's; SQLite runs it verbatim except {@code DEFAULT now()}, which it spells
 * {@code CURRENT_TIMESTAMP} (the same value in PostgreSQL).
 */
class SinksTest {
  private Path dir;
  private Connection db;

  @BeforeEach
  void open() throws Exception {
    dir = Files.createTempDirectory("dedup-sinks");
    db = DriverManager.getConnection("jdbc:sqlite:" + dir.resolve("sink.db"));
    try (Statement st = db.createStatement()) {
      st.execute(Sinks.APPLIED_DDL.replace("DEFAULT now()", "DEFAULT CURRENT_TIMESTAMP"));
      st.execute(Sinks.FENCE_DDL);
      st.execute("CREATE TABLE ledger (id blob PRIMARY KEY, amount bigint NOT NULL)");
    }
    db.setAutoCommit(false);
  }

  @AfterEach
  void close() throws Exception {
    db.close();
    try (var files = Files.walk(dir)) {
      files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
    }
  }

  /** The recipe: the applied row and the effect in one transaction; the effect only if first. */
  private boolean apply(byte[] id, long token, boolean crashBeforeCommit) throws SQLException {
    try {
      boolean first = Sinks.markApplied(db, "payments.charge", id, token);
      if (first) {
        try (var st = db.prepareStatement("INSERT INTO ledger (id, amount) VALUES (?, 42)")) {
          st.setBytes(1, id);
          st.executeUpdate();
        }
      }
      if (crashBeforeCommit) {
        db.rollback();
        return first;
      }
      db.commit();
      return first;
    } catch (SQLException e) {
      db.rollback();
      throw e;
    }
  }

  private long count(String sql) throws SQLException {
    try (Statement st = db.createStatement(); ResultSet rs = st.executeQuery(sql)) {
      rs.next();
      return rs.getLong(1);
    }
  }

  @Test
  void markAppliedLetsOnlyTheFirstTransactionRunTheEffect() throws Exception {
    byte[] id = "order-1".getBytes(StandardCharsets.UTF_8);
    assertTrue(apply(id, 7, false));
    assertFalse(apply(id, 9, false), "a redelivery with a later token must skip the effect");
    assertTrue(apply("order-2".getBytes(StandardCharsets.UTF_8), 8, false), "another id is new");
    assertEquals(2, count("SELECT count(*) FROM ledger"));
    assertEquals(7, count("SELECT token FROM dedup_applied WHERE id = x'6f726465722d31'"));
  }

  @Test
  void aRolledBackTransactionLeavesTheIdUnapplied() throws Exception {
    byte[] id = {0, (byte) 0xff, 1}; // binary-safe ids
    assertTrue(apply(id, 3, true));
    assertEquals(0, count("SELECT count(*) FROM dedup_applied"));
    assertTrue(apply(id, 4, false), "after a crash before commit the redelivery applies it");
    assertEquals(1, count("SELECT count(*) FROM ledger"));
  }

  @Test
  void advanceFenceAcceptsEqualOrNewerTokensAndRejectsStaleOnes() throws Exception {
    assertTrue(Sinks.advanceFence(db, "account-9", 5));
    assertTrue(Sinks.advanceFence(db, "account-9", 5), "the same holder may write again");
    assertTrue(Sinks.advanceFence(db, "account-9", 8));
    assertFalse(Sinks.advanceFence(db, "account-9", 6), "a stale holder is fenced off");
    assertTrue(Sinks.advanceFence(db, "account-10", 1), "fences are per resource");
    db.commit();
    assertEquals(8, count("SELECT token FROM dedup_fence WHERE resource = 'account-9'"));
  }
}
