package dev.dedup.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.dedup.v1.ClaimOutcome;
import dev.dedup.v1.ClaimRequest;
import dev.dedup.v1.ClaimResponse;
import dev.dedup.v1.ForgetRequest;
import dev.dedup.v1.RecordState;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;

/** The contract's {@code once} op: the effectively-once helper with a handler that runs the step's actions. */
final class ContractOnce {
  /** The handler's own failure (`fail: true`), reported as `error: HANDLER`. */
  static final class HandlerFailure extends Exception {
    HandlerFailure() {
      super("handler failed (contract action)");
    }
  }

  private ContractOnce() {}

  @SuppressWarnings("unchecked")
  static Map<String, Object> run(
      DedupClient client, DedupClient direct, Map<String, Object> step, ClaimRequest claim, Map<String, Long> tokens)
      throws Exception {
    EffectivelyOnce.Builder options = EffectivelyOnce.builder(client);
    if (step.containsKey("renew_every_ms")) {
      options.renewEvery(Duration.ofMillis(((Number) step.get("renew_every_ms")).longValue()));
    }
    List<Map<String, Object>> actions = (List<Map<String, Object>>) step.getOrDefault("actions", List.of());
    byte[] result = step.containsKey("result") ? String.valueOf(step.get("result")).getBytes(StandardCharsets.UTF_8) : null;
    AtomicBoolean ran = new AtomicBoolean();
    Map<String, Object> m = new HashMap<>();
    try (EffectivelyOnce once = options.build()) {
      EffectivelyOnce.Outcome outcome =
          once.process(
              claim,
              lease -> {
                ran.set(true);
                for (Map<String, Object> action : actions) {
                  act(action, lease, direct, claim, tokens);
                }
                return result;
              });
      m.put("status", outcome.status().name());
      m.put("action", outcome.action().name());
      m.put("should_ack", outcome.shouldAck());
      outcome.storedResult().ifPresent(r -> m.put("result", new String(r, StandardCharsets.UTF_8)));
      m.put("token", outcome.fencingToken());
    } catch (HandlerFailure e) {
      m.put("error", "HANDLER");
    }
    m.put("handler_ran", ran.get());
    return m;
  }

  private static void act(Map<String, Object> action, Lease lease, DedupClient direct, ClaimRequest claim, Map<String, Long> tokens)
      throws Exception {
    String ns = claim.getNamespace();
    if (action.containsKey("cut")) {
      cut(((Number) action.get("cut")).longValue());
    } else if (action.containsKey("forget")) {
      direct.forget(ForgetRequest.newBuilder().setNamespace(ns).setId(claim.getId()).build());
    } else if (action.containsKey("claim_other")) {
      ClaimResponse r = direct.claim(ClaimRequest.newBuilder().setNamespace(ns).setId(claim.getId()).build());
      assertEquals(ClaimOutcome.CLAIM_OUTCOME_ACQUIRED, r.getOutcome(), "claim_other");
      tokens.put(String.valueOf(action.get("claim_other")), r.getFencingToken());
    } else if (action.containsKey("await_absent")) {
      long until = System.nanoTime() + ((Number) action.get("await_absent")).longValue() * 1_000_000L;
      while (direct.inspect(ns, claim.getId().toStringUtf8()).getState() != RecordState.RECORD_STATE_ABSENT) {
        assertTrue(System.nanoTime() < until, "await_absent: the record is still there");
        Thread.sleep(25); // poll interval of a bounded condition wait
      }
    } else if (action.containsKey("ensure")) {
      if ("ok".equals(action.get("ensure"))) {
        lease.ensure();
        assertFalse(lease.isLost(), "ensure ok: lease.isLost()");
      } else {
        try {
          lease.ensure();
          fail("ensure: expected LeaseLostException");
        } catch (LeaseLostException expected) {
          assertTrue(lease.isLost(), "ensure lost: lease.isLost()");
        }
      }
    } else if (action.containsKey("fail")) {
      throw new HandlerFailure();
    } else {
      throw new IllegalArgumentException("unknown once action " + action);
    }
  }

  /** Sends "cut MS" to the toggle proxy's control socket and waits for "ok". */
  static void cut(long ms) throws Exception {
    String control = System.getenv("DEDUP_TOGGLE_CONTROL");
    assertTrue(control != null && !control.isEmpty(), "$DEDUP_TOGGLE_CONTROL is not set");
    int colon = control.lastIndexOf(':');
    try (Socket s = new Socket(control.substring(0, colon), Integer.parseInt(control.substring(colon + 1)))) {
      s.setSoTimeout(10_000);
      Writer out = new OutputStreamWriter(s.getOutputStream(), StandardCharsets.UTF_8);
      out.write("cut " + ms + "\n");
      out.flush();
      String reply = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.UTF_8)).readLine();
      assertEquals("ok", reply, "toggle control reply");
    }
  }
}
