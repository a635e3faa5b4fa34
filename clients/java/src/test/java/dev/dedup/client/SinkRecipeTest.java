package dev.dedup.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.dedup.v1.ClaimOutcome;
import dev.dedup.v1.ClaimRequest;
import dev.dedup.v1.RecordState;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.Statement;
import java.time.Duration;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The README's transactional-sink recipe end to end: the helper on the live sidecar ($DEDUP_TARGET)
 * and the effect plus {@code dedup_applied} in one SQLite transaction. A consumer that dies after
 * its database commit and before the dedup Commit leaves the effect applied once: the redelivery's
 * handler runs again, finds the id applied and skips the effect.
 */
class SinkRecipeTest {
  private static final String NS = "contract";
  private Path dir;
  private String url;

  @BeforeEach
  void open() throws Exception {
    dir = Files.createTempDirectory("dedup-sink-recipe");
    url = "jdbc:sqlite:" + dir.resolve("shop.db");
    try (Connection db = DriverManager.getConnection(url); Statement st = db.createStatement()) {
      st.execute(Sinks.APPLIED_DDL.replace("DEFAULT now()", "DEFAULT CURRENT_TIMESTAMP"));
      st.execute("CREATE TABLE charges (order_id text NOT NULL, amount bigint NOT NULL)");
    }
  }

  @AfterEach
  void close() throws Exception {
    try (var files = Files.walk(dir)) {
      files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
    }
  }

  /** The handler of the README: effect and applied row in one transaction. */
  private void charge(String orderId, long token, AtomicInteger effects) throws Exception {
    try (Connection tx = DriverManager.getConnection(url)) {
      tx.setAutoCommit(false);
      if (Sinks.markApplied(tx, NS, orderId.getBytes(StandardCharsets.UTF_8), token)) {
        try (PreparedStatement st = tx.prepareStatement("INSERT INTO charges (order_id, amount) VALUES (?, 42)")) {
          st.setString(1, orderId);
          st.executeUpdate();
        }
        effects.incrementAndGet();
      }
      tx.commit();
    }
  }

  private long charges(String orderId) throws Exception {
    try (Connection db = DriverManager.getConnection(url);
        PreparedStatement st = db.prepareStatement("SELECT count(*) FROM charges WHERE order_id = ?")) {
      st.setString(1, orderId);
      try (ResultSet rs = st.executeQuery()) {
        rs.next();
        return rs.getLong(1);
      }
    }
  }

  @Test
  void aConsumerKilledBetweenItsEffectAndTheCommitDoesNotApplyTheEffectTwice() throws Exception {
    String target = System.getenv("DEDUP_TARGET");
    assertNotNull(target, "$DEDUP_TARGET is not set");
    String orderId = "java-sink-" + UUID.randomUUID();
    AtomicInteger effects = new AtomicInteger();
    try (DedupClient client = DedupClient.builder(target).deadline(Duration.ofSeconds(20)).build();
        EffectivelyOnce once = new EffectivelyOnce(client)) {
      // First delivery: the consumer claims, applies, and dies before Commit (no release either).
      var claim = client.claim(ClaimRequest.newBuilder().setNamespace(NS).setId(DedupClient.bytes(orderId)).setLeaseMs(300).build());
      assertEquals(ClaimOutcome.CLAIM_OUTCOME_ACQUIRED, claim.getOutcome());
      charge(orderId, claim.getFencingToken(), effects);
      long until = System.nanoTime() + Duration.ofSeconds(10).toNanos();
      while (client.inspect(NS, orderId).getState() != RecordState.RECORD_STATE_ABSENT) {
        assertTrue(System.nanoTime() < until, "the dead consumer's lease did not end");
        Thread.sleep(25); // poll interval of a bounded condition wait
      }
      // Redelivery: the helper runs the handler again; the sink skips the effect; the id is committed.
      AtomicInteger runs = new AtomicInteger();
      EffectivelyOnce.Outcome outcome =
          once.process(
              NS,
              orderId,
              lease -> {
                runs.incrementAndGet();
                charge(orderId, lease.token(), effects);
                return null;
              });
      assertEquals(EffectivelyOnce.Status.PROCESSED, outcome.status());
      assertEquals(1, runs.get());
      assertEquals(EffectivelyOnce.Status.DUPLICATE, once.process(NS, orderId, lease -> null).status());
    }
    assertEquals(1, effects.get());
    assertEquals(1, charges(orderId));
  }
}
