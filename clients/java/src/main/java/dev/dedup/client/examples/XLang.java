package dev.dedup.client.examples;

import dev.dedup.client.DedupClient;
import dev.dedup.v1.CheckOutcome;
import dev.dedup.v1.ClaimOutcome;
import dev.dedup.v1.ClaimResponse;
import dev.dedup.v1.CommitOutcome;
import dev.dedup.v1.CommitRequest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Cross-language check (see xlang.sh): XLANG_MODE=commit claims and commits every id (ACQUIRED then
 * COMMITTED); XLANG_MODE=expect-duplicate claims and checks every id (DUPLICATE for both).
 */
public final class XLang {
  private XLang() {}

  public static void main(String[] args) {
    String target = System.getenv("DEDUP_TARGET");
    String mode = System.getenv("XLANG_MODE");
    String ns = System.getenv().getOrDefault("XLANG_NAMESPACE", "contract");
    List<String> ids =
        Arrays.stream(System.getenv().getOrDefault("XLANG_IDS", "").split(",")).filter(s -> !s.isEmpty()).toList();
    if (target == null || ids.isEmpty() || !("commit".equals(mode) || "expect-duplicate".equals(mode))) {
      System.err.println("usage: DEDUP_TARGET=host:port XLANG_MODE=commit|expect-duplicate XLANG_NAMESPACE=ns XLANG_IDS=a,b xlang.sh");
      System.exit(2);
    }
    List<String> failures = new ArrayList<>();
    try (DedupClient client = DedupClient.builder(target).deadline(java.time.Duration.ofSeconds(30)).build()) {
      for (String id : ids) {
        ClaimResponse claim = client.claim(ns, id);
        if ("commit".equals(mode)) {
          if (claim.getOutcome() != ClaimOutcome.CLAIM_OUTCOME_ACQUIRED) {
            failures.add(id + ": claim " + claim.getOutcome());
            continue;
          }
          CommitRequest req =
              CommitRequest.newBuilder()
                  .setNamespace(ns)
                  .setId(com.google.protobuf.ByteString.copyFromUtf8(id))
                  .setFencingToken(claim.getFencingToken())
                  .setResult(com.google.protobuf.ByteString.copyFromUtf8("xlang-java"))
                  .build();
          CommitOutcome commit = client.commit(req).getOutcome();
          if (commit != CommitOutcome.COMMIT_OUTCOME_COMMITTED) {
            failures.add(id + ": commit " + commit);
          }
        } else {
          CheckOutcome check = client.check(ns, id).getOutcome();
          if (claim.getOutcome() != ClaimOutcome.CLAIM_OUTCOME_DUPLICATE) {
            failures.add(id + ": claim " + claim.getOutcome());
          }
          if (check != CheckOutcome.CHECK_OUTCOME_DUPLICATE) {
            failures.add(id + ": check " + check);
          }
        }
      }
    } catch (RuntimeException e) {
      failures.add(e.toString());
    }
    String status = failures.isEmpty() ? "ok" : "FAILED " + String.join("; ", failures);
    System.out.printf("xlang java mode=%s namespace=%s ids=%d %s%n", mode, ns, ids.size(), status);
    System.exit(failures.isEmpty() ? 0 : 1);
  }
}
