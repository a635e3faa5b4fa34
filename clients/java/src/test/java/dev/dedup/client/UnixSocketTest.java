package dev.dedup.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.dedup.v1.CheckOutcome;
import java.time.Duration;
import java.util.UUID;
import org.junit.jupiter.api.Test;

/** The client over the sidecar's Unix socket ($DEDUP_UNIX_TARGET, "unix:/path"). */
class UnixSocketTest {
  @Test
  void checkOverAUnixSocket() {
    String target = System.getenv("DEDUP_UNIX_TARGET");
    assumeTrue(target != null && !target.isEmpty(), "$DEDUP_UNIX_TARGET is not set");
    try (DedupClient client = DedupClient.builder(target).deadline(Duration.ofSeconds(30)).build()) {
      String id = "java-unix-" + UUID.randomUUID();
      assertEquals(CheckOutcome.CHECK_OUTCOME_NEW, client.check("contract", id).getOutcome());
      assertEquals(CheckOutcome.CHECK_OUTCOME_DUPLICATE, client.check("contract", id).getOutcome());
    }
  }
}
