package dev.dedup.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.google.protobuf.ByteString;
import com.google.protobuf.ProtocolMessageEnum;
import com.google.rpc.BadRequest;
import dev.dedup.v1.CheckRequest;
import dev.dedup.v1.CheckResponse;
import dev.dedup.v1.ClaimRequest;
import dev.dedup.v1.ClaimResponse;
import dev.dedup.v1.CommitRequest;
import dev.dedup.v1.InspectResponse;
import dev.dedup.v1.RenewRequest;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.Callable;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.DynamicContainer;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.yaml.snakeyaml.Yaml;

/**
 * The shared contract suite (tests/contract/scenarios.yaml) against a live sidecar ($DEDUP_TARGET
 * ...): every scenario twice, over the stream transport (the default) and over unary calls.
 */
class ContractTest {
  private static final Map<String, String> TARGET_ENV =
      Map.of(
          "sidecar", "DEDUP_TARGET",
          "blackhole", "DEDUP_BLACKHOLE_TARGET",
          "unavailable", "DEDUP_UNAVAILABLE_TARGET",
          "toggle", "DEDUP_TOGGLE_TARGET");
  private static final Map<String, DedupClient> CLIENTS = new ConcurrentHashMap<>();
  private static final ExecutorService ASYNC = Executors.newCachedThreadPool();

  @AfterAll
  static void closeClients() {
    ASYNC.shutdownNow();
    CLIENTS.values().forEach(DedupClient::close);
    CLIENTS.clear();
  }

  @SuppressWarnings("unchecked")
  @TestFactory
  Stream<DynamicContainer> contract() throws IOException {
    String file = System.getProperty("dedup.scenarios", "../../tests/contract/scenarios.yaml");
    Map<String, Object> doc;
    try (InputStream in = new FileInputStream(file)) {
      doc = new Yaml().load(in);
    }
    List<Map<String, Object>> scenarios = (List<Map<String, Object>>) doc.get("scenarios");
    return Stream.of(Transport.STREAM, Transport.UNARY)
        .map(
            t ->
                DynamicContainer.dynamicContainer(
                    t.name().toLowerCase(),
                    scenarios.stream().map(s -> DynamicTest.dynamicTest((String) s.get("name"), () -> runScenario(s, t)))));
  }

  static DedupClient clientFor(String target, Transport transport) {
    String env = TARGET_ENV.get(target);
    assertNotNull(env, "unknown scenario target " + target);
    String address = System.getenv(env);
    assertTrue(address != null && !address.isEmpty(), "$" + env + " is not set: the contract suite needs a live sidecar");
    return CLIENTS.computeIfAbsent(
        address + " " + transport,
        k -> {
          DedupClient c = DedupClient.builder(address).transport(transport).build();
          if (target.equals("sidecar")) {
            // Warm up (JVM + Netty cold start on a loaded machine can take seconds), so the
            // scenarios' own deadlines measure the sidecar, not class loading.
            c.withDeadline(Duration.ofSeconds(60)).inspect("contract", "java-warmup");
          }
          return c;
        });
  }

  /** A step's answer, or the client's error. */
  private record Result(Map<String, Object> got, DedupException error) {}

  @SuppressWarnings("unchecked")
  private void runScenario(Map<String, Object> scenario, Transport transport) throws Exception {
    String name = (String) scenario.get("name");
    DedupClient base = clientFor((String) scenario.getOrDefault("target", "sidecar"), transport);
    DedupClient direct = clientFor("sidecar", transport);
    String tag = "java-" + transport.name().toLowerCase() + "-" + name + "-";
    Map<String, String> vars = new HashMap<>();
    vars.put("$id", tag + UUID.randomUUID().toString().substring(0, 12));
    vars.put("$id2", tag + UUID.randomUUID().toString().substring(0, 12));
    Map<String, Long> tokens = new ConcurrentHashMap<>();
    Map<String, Future<Result>> pending = new HashMap<>();
    List<Map<String, Object>> steps = (List<Map<String, Object>>) scenario.get("steps");
    StreamMux held = null; // its send lock is held while a run of async Claims queues up
    int queuedBefore = 0;
    int i = 0;
    for (Map<String, Object> step : steps) {
      i++;
      String where = "step " + i + " (" + step.get("op") + ")";
      Map<String, Object> expect = (Map<String, Object>) step.getOrDefault("expect", Map.of());
      long deadlineMs = ((Number) step.getOrDefault("deadline_ms", 5000)).longValue();
      DedupClient client = (Boolean.TRUE.equals(step.get("direct")) ? direct : base).withDeadline(Duration.ofMillis(deadlineMs));
      if ("join".equals(step.get("op"))) {
        Future<Result> f = pending.remove(String.valueOf(step.get("name")));
        assertNotNull(f, where + ": no async step named " + step.get("name"));
        check(where, expect, f.get(60, TimeUnit.SECONDS), tokens);
        continue;
      }
      if (step.containsKey("async")) {
        // Consecutive async Claims on the stream are started while the send lock is held, so they
        // are pending together and go out as one ClaimBatch (ADR 0018), as under real concurrency.
        StreamMux mux = client.mux();
        boolean together = mux != null && asyncClaim(step) && i < steps.size() && asyncClaim(steps.get(i));
        if (together && held == null) {
          held = mux;
          held.sendLock().lock();
          queuedBefore = held.queued();
        }
        pending.put(String.valueOf(step.get("async")), ASYNC.submit(() -> attempt(client, direct, step, vars, tokens)));
        if (held != null && !together) {
          releaseTogether(held, queuedBefore, countAsyncClaimsBefore(steps, i));
          held = null;
        }
        continue;
      }
      check(where, expect, attempt(client, direct, step, vars, tokens), tokens);
    }
    assertTrue(pending.isEmpty(), "async steps never joined: " + pending.keySet());
  }

  private static boolean asyncClaim(Map<String, Object> step) {
    return step.containsKey("async") && "claim".equals(step.get("op")) && !Boolean.TRUE.equals(step.get("direct"));
  }

  /** How many async Claims end at step {@code end} (1-based), counting back. */
  private static int countAsyncClaimsBefore(List<Map<String, Object>> steps, int end) {
    int n = 0;
    while (end - n - 1 >= 0 && asyncClaim(steps.get(end - n - 1))) {
      n++;
    }
    return n;
  }

  /** Waits (bounded) until {@code n} more calls are queued on {@code mux}, then lets them go. */
  private static void releaseTogether(StreamMux mux, int queuedBefore, int n) throws InterruptedException {
    try {
      long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
      while (mux.queued() < queuedBefore + n && System.nanoTime() < until) {
        Thread.sleep(5); // poll interval of a bounded condition wait
      }
    } finally {
      mux.sendLock().unlock();
    }
    mux.flushQueued();
  }

  private static Result attempt(
      DedupClient client, DedupClient direct, Map<String, Object> step, Map<String, String> vars, Map<String, Long> tokens)
      throws Exception {
    try {
      return new Result(perform(client, direct, step, vars, tokens), null);
    } catch (DedupException e) {
      return new Result(null, e);
    }
  }

  private static void check(String where, Map<String, Object> expect, Result r, Map<String, Long> tokens) {
    if (r.error() != null) {
      DedupException e = r.error();
      if (!expect.containsKey("error")) {
        fail(where + ": unexpected error " + e.getMessage(), e);
      }
      assertEquals(expect.get("error"), e.code().name(), where + ": status code");
      if (expect.containsKey("field_violation")) {
        List<String> fields = e.fieldViolations().stream().map(BadRequest.FieldViolation::getField).toList();
        assertTrue(fields.contains(expect.get("field_violation")), where + ": violations " + fields);
      }
      return;
    }
    Map<String, Object> got = r.got();
    if (expect.containsKey("error")) {
      assertEquals(expect.get("error"), got.get("error"), where + ": expected an error, got " + got);
      return;
    }
    assertTrue(!got.containsKey("error"), where + ": unexpected error " + got.get("error"));
    verify(where, expect, got, tokens);
  }

  private static String shortName(ProtocolMessageEnum e, String prefix) {
    return ((Enum<?>) e).name().substring(prefix.length());
  }

  private static Map<String, Object> checkResult(CheckResponse r) {
    Map<String, Object> m = new HashMap<>();
    m.put("outcome", shortName(r.getOutcome(), "CHECK_OUTCOME_"));
    return m;
  }

  private static Map<String, Object> claimResult(ClaimResponse r) {
    Map<String, Object> m = new HashMap<>();
    m.put("outcome", shortName(r.getOutcome(), "CLAIM_OUTCOME_"));
    m.put("token", r.getFencingToken());
    if (r.hasResult()) {
      m.put("result", r.getResult().toStringUtf8());
    }
    return m;
  }

  @SuppressWarnings("unchecked")
  private static Map<String, Object> perform(
      DedupClient client, DedupClient direct, Map<String, Object> step, Map<String, String> vars, Map<String, Long> tokens)
      throws Exception {
    String ns = String.valueOf(step.getOrDefault("ns", "contract"));
    String rawId = String.valueOf(step.getOrDefault("id", ""));
    ByteString id = DedupClient.bytes(vars.getOrDefault(rawId, rawId));
    ByteString fp = step.containsKey("fingerprint") ? DedupClient.bytes(String.valueOf(step.get("fingerprint"))) : ByteString.EMPTY;
    long windowMs = ((Number) step.getOrDefault("window_ms", 0)).longValue();
    long leaseMs = ((Number) step.getOrDefault("lease_ms", 0)).longValue();
    long waitMs = ((Number) step.getOrDefault("wait_ms", 0)).longValue();
    String op = (String) step.get("op");
    Map<String, Object> m = new HashMap<>();
    switch (op) {
      case "check":
        return checkResult(client.check(CheckRequest.newBuilder().setNamespace(ns).setId(id).setFingerprint(fp).setWindowMs(windowMs).build()));
      case "claim": {
        ClaimResponse r = client.claim(ClaimRequest.newBuilder().setNamespace(ns).setId(id).setFingerprint(fp).setLeaseMs(leaseMs).setWaitMs(waitMs).build());
        if (step.containsKey("save_token") && r.getOutcome() == dev.dedup.v1.ClaimOutcome.CLAIM_OUTCOME_ACQUIRED) {
          tokens.put(String.valueOf(step.get("save_token")), r.getFencingToken());
        }
        return claimResult(r);
      }
      case "commit": {
        CommitRequest.Builder b = CommitRequest.newBuilder().setNamespace(ns).setId(id).setFencingToken(token(tokens, step.get("token"))).setWindowMs(windowMs);
        if (step.containsKey("result")) {
          b.setResult(DedupClient.bytes(String.valueOf(step.get("result"))));
        }
        m.put("outcome", shortName(client.commit(b.build()).getOutcome(), "COMMIT_OUTCOME_"));
        return m;
      }
      case "release":
        m.put("outcome", shortName(client.release(ns, vars.getOrDefault(rawId, rawId), token(tokens, step.get("token"))).getOutcome(), "RELEASE_OUTCOME_"));
        return m;
      case "renew":
        m.put("outcome", shortName(client.renew(RenewRequest.newBuilder().setNamespace(ns).setId(id).setFencingToken(token(tokens, step.get("token"))).setLeaseMs(leaseMs).build()).getOutcome(), "RENEW_OUTCOME_"));
        return m;
      case "once": {
        ClaimRequest.Builder claim = ClaimRequest.newBuilder().setNamespace(ns).setId(id).setFingerprint(fp).setLeaseMs(leaseMs);
        if (step.containsKey("wait_ms")) {
          claim.setWaitMs(waitMs);
        }
        return ContractOnce.run(client, direct, step, claim.build(), tokens);
      }
      case "inspect":
        m.put("state", shortName(client.inspect(ns, id.toStringUtf8()).getState(), "RECORD_STATE_"));
        return m;
      case "check_batch": {
        List<CheckRequest> items = new ArrayList<>();
        for (Object x : (List<Object>) step.get("ids")) {
          items.add(CheckRequest.newBuilder().setNamespace(ns).setId(DedupClient.bytes(vars.getOrDefault(String.valueOf(x), String.valueOf(x)))).build());
        }
        m.put("outcomes", client.checkBatch(items).stream().map(r -> shortName(r.getOutcome(), "CHECK_OUTCOME_")).toList());
        return m;
      }
      case "claim_batch": {
        List<ClaimRequest> items = new ArrayList<>();
        for (Object x : (List<Object>) step.get("ids")) {
          items.add(ClaimRequest.newBuilder().setNamespace(ns).setId(DedupClient.bytes(vars.getOrDefault(String.valueOf(x), String.valueOf(x)))).build());
        }
        m.put("outcomes", client.claimBatch(items).stream().map(r -> shortName(r.getOutcome(), "CLAIM_OUTCOME_")).toList());
        return m;
      }
      case "concurrent_claims": {
        int n = ((Number) step.get("n")).intValue();
        ClaimRequest req = ClaimRequest.newBuilder().setNamespace(ns).setId(id).build();
        ExecutorService pool = Executors.newFixedThreadPool(n);
        try {
          List<Callable<ClaimResponse>> calls = new ArrayList<>();
          for (int k = 0; k < n; k++) {
            calls.add(() -> client.claim(req));
          }
          Map<String, Integer> counts = new TreeMap<>();
          for (Future<ClaimResponse> f : pool.invokeAll(calls)) {
            counts.merge(shortName(f.get().getOutcome(), "CLAIM_OUTCOME_"), 1, Integer::sum);
          }
          m.put("counts", counts);
          return m;
        } finally {
          pool.shutdownNow();
        }
      }
      case "await_state": {
        String want = String.valueOf(step.get("state"));
        long until = System.nanoTime() + ((Number) step.get("within_ms")).longValue() * 1_000_000L;
        while (true) {
          InspectResponse r = client.inspect(ns, id.toStringUtf8());
          String state = shortName(r.getState(), "RECORD_STATE_");
          if (state.equals(want)) {
            m.put("state", state);
            return m;
          }
          assertTrue(System.nanoTime() < until, "state " + want + " not seen in time (last " + state + ")");
          Thread.sleep(25); // poll interval of a bounded condition wait
        }
      }
      default:
        throw new IllegalArgumentException("unknown op " + op);
    }
  }

  private static long token(Map<String, Long> tokens, Object ref) {
    Long t = tokens.get(String.valueOf(ref).replaceFirst("^\\$", ""));
    assertNotNull(t, "no saved token " + ref);
    return t;
  }

  @SuppressWarnings("unchecked")
  private static void verify(String where, Map<String, Object> expect, Map<String, Object> got, Map<String, Long> tokens) {
    if (expect.containsKey("outcome")) {
      assertEquals(expect.get("outcome"), got.get("outcome"), where + ": outcome");
    }
    if (expect.containsKey("status")) {
      assertEquals(expect.get("status"), got.get("status"), where + ": status");
    }
    if (expect.containsKey("action")) {
      assertEquals(expect.get("action"), got.get("action"), where + ": action");
      assertEquals(!"ACK".equals(expect.get("action")), !(Boolean) got.get("should_ack"), where + ": should_ack");
    }
    if (expect.containsKey("handler_ran")) {
      assertEquals(expect.get("handler_ran"), got.get("handler_ran"), where + ": handler_ran");
    }
    if (expect.containsKey("token_from")) {
      long prev = token(tokens, expect.get("token_from"));
      assertTrue(Long.compareUnsigned((Long) got.get("token"), prev) > 0, where + ": token not greater than " + prev);
    }
    if (expect.containsKey("state")) {
      assertEquals(expect.get("state"), got.get("state"), where + ": state");
    }
    if (expect.containsKey("result")) {
      assertEquals(expect.get("result"), got.get("result"), where + ": stored result");
    }
    if (expect.containsKey("token_greater_than")) {
      long prev = token(tokens, expect.get("token_greater_than"));
      assertTrue(Long.compareUnsigned((Long) got.get("token"), prev) > 0, where + ": token not greater than " + prev);
    }
    if (expect.containsKey("outcomes")) {
      assertEquals(expect.get("outcomes"), got.get("outcomes"), where + ": batch outcomes");
    }
    if (expect.containsKey("counts")) {
      assertEquals(new TreeMap<>((Map<String, Object>) expect.get("counts")), got.get("counts"), where + ": counts");
    }
  }
}
