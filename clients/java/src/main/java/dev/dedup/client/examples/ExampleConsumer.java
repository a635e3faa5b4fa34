package dev.dedup.client.examples;

import dev.dedup.client.DedupClient;
import dev.dedup.client.EffectivelyOnce;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Example consumer: an in-process queue that redelivers some messages (as a broker does after a
 * missed ack), processed effectively once. Prints processed and duplicates skipped; processed ==
 * unique.
 */
public final class ExampleConsumer {
  private ExampleConsumer() {}

  public static void main(String[] args) throws Exception {
    String target = System.getenv().getOrDefault("DEDUP_TARGET", "127.0.0.1:50051");
    String namespace = System.getenv().getOrDefault("DEDUP_NAMESPACE", "examples.orders");
    String run = UUID.randomUUID().toString().substring(0, 8);

    // 40 unique orders; every third one is delivered again, every fifth once more.
    List<String> deliveries = new ArrayList<>();
    for (int i = 0; i < 40; i++) {
      String id = "order-" + run + "-" + i;
      deliveries.add(id);
      if (i % 3 == 0) deliveries.add(id);
      if (i % 5 == 0) deliveries.add(id);
    }
    Collections.shuffle(deliveries);
    ConcurrentLinkedQueue<String> queue = new ConcurrentLinkedQueue<>(deliveries);

    AtomicInteger processed = new AtomicInteger();
    AtomicInteger skipped = new AtomicInteger();
    try (DedupClient client = DedupClient.builder(target).deadline(java.time.Duration.ofSeconds(30)).build();
        EffectivelyOnce once = new EffectivelyOnce(client)) {
      ExecutorService workers = Executors.newFixedThreadPool(4);
      for (int w = 0; w < 4; w++) {
        workers.submit(
            () -> {
              for (String id = queue.poll(); id != null; id = queue.poll()) {
                EffectivelyOnce.Outcome outcome =
                    once.process(
                        namespace,
                        id,
                        lease -> {
                          lease.ensure(); // renews now; throws LeaseLostException if the lease is gone
                          processed.incrementAndGet(); // the side effect, fenced by lease.token()
                          return ("charged, token " + lease.token()).getBytes(StandardCharsets.UTF_8);
                        });
                if (outcome.status() == EffectivelyOnce.Status.DUPLICATE) {
                  skipped.incrementAndGet();
                }
                switch (outcome.action()) {
                  case ACK -> {} // a broker consumer acks here
                  case NACK -> queue.add(id); // requeue: redeliver later
                  case DEAD_LETTER -> System.err.println("dead-letter " + id);
                }
              }
              return null;
            });
      }
      workers.shutdown();
      if (!workers.awaitTermination(60, TimeUnit.SECONDS)) {
        throw new IllegalStateException("workers did not finish");
      }
    }
    System.out.printf("unique=%d processed=%d duplicates_skipped=%d%n", 40, processed.get(), skipped.get());
    System.exit(processed.get() == 40 ? 0 : 1);
  }
}
