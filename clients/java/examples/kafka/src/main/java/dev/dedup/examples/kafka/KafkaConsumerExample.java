package dev.dedup.examples.kafka;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.google.protobuf.ByteString;
import dev.dedup.client.DedupClient;
import dev.dedup.client.EffectivelyOnce;
import dev.dedup.client.Lease;
import dev.dedup.client.Sinks;
import dev.dedup.v1.ClaimRequest;
import java.io.FileOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Kafka read-process-write through the effectively-once helper (kafka-clients, a consumer group,
 * offsets committed in Kafka transactions with sendOffsetsToTransaction).
 *
 * <p>Per record of topic {@code in}: the helper claims the order id, the handler applies the
 * transactional sink recipe (Sinks.markApplied + the effect row in one PostgreSQL transaction)
 * and returns the stored result {topic, partition, offset, output} (the output and the record
 * that emits it, both kept in the effect row); then the outcome decides:
 *
 * <ul>
 *   <li>PROCESSED or DUPLICATE whose result names this very record (the record that applied the
 *       effect first): send the stored output (again, if an earlier transaction of it aborted);
 *   <li>PROCESSED or DUPLICATE naming another record (a duplicate publish, a re-send after the
 *       window): send nothing;
 *   <li>LEASE_LOST, IN_PROGRESS or an error: abort the transaction, seek back to the committed
 *       offsets;
 *   <li>CONFLICT: copy the record to {@code <in>.dead}.
 * </ul>
 *
 * <p>The offsets of the batch go into the same transaction, so the output and "this input is
 * done" become visible together to read_committed consumers, or not at all.
 */
public final class KafkaConsumerExample {
  private static final long LEASE_MS = 10_000;
  private static final Duration RETRY_PAUSE = Duration.ofMillis(200);
  private static final ObjectMapper JSON = new ObjectMapper();

  private enum Verdict {
    KEEP,
    ABORT
  }

  private final Map<String, String> opts;
  private final EffectivelyOnce once;
  private final Connection db;
  private final KafkaProducer<byte[], byte[]> producer;
  private final FileOutputStream events;
  private volatile boolean stopping;

  private KafkaConsumerExample(
      Map<String, String> opts,
      EffectivelyOnce once,
      Connection db,
      KafkaProducer<byte[], byte[]> producer,
      FileOutputStream events) {
    this.opts = opts;
    this.once = once;
    this.db = db;
    this.producer = producer;
    this.events = events;
  }

  private void event(String kind, Map<String, Object> fields) {
    if (events == null) {
      return;
    }
    ObjectNode line = JSON.createObjectNode();
    line.put("t", System.currentTimeMillis() / 1000.0);
    line.put("c", opts.get("name"));
    line.put("pid", ProcessHandle.current().pid());
    line.put("e", kind);
    fields.forEach((k, v) -> line.set(k, JSON.valueToTree(v)));
    try {
      events.write((line + "\n").getBytes(StandardCharsets.UTF_8)); // one write: survives SIGKILL line by line
    } catch (IOException e) {
      throw new IllegalStateException(e);
    }
  }

  /**
   * The handler: the effect and dedup_applied in one transaction. The first application records the
   * output and this record as its emitter; a later holder reads both back, so every holder stores
   * the same result.
   */
  private byte[] apply(ConsumerRecord<byte[], byte[]> r, String id, JsonNode order, Lease lease)
      throws SQLException, IOException {
    long token = lease.token();
    event("claimed", Map.of("id", id, "token", token, "partition", r.partition(), "offset", r.offset()));
    db.setAutoCommit(false);
    ObjectNode stored = JSON.createObjectNode();
    String output;
    boolean first;
    try {
      first = Sinks.markApplied(db, opts.get("namespace"), id.getBytes(StandardCharsets.UTF_8), token);
      if (first) {
        ObjectNode out = JSON.createObjectNode();
        out.put("by", opts.get("name"));
        out.put("charged", order.path("amount").asLong());
        out.put("id", id);
        out.put("token", token);
        output = JSON.writeValueAsString(out);
        try (PreparedStatement insert =
            db.prepareStatement(
                "INSERT INTO kafka_effect (id, token, consumer, output, emitter_topic, emitter_partition,"
                    + " emitter_offset) VALUES (?, ?, ?, ?, ?, ?, ?)")) {
          insert.setString(1, id);
          insert.setLong(2, token);
          insert.setString(3, opts.get("name"));
          insert.setString(4, output);
          insert.setString(5, r.topic());
          insert.setInt(6, r.partition());
          insert.setLong(7, r.offset());
          insert.executeUpdate();
        }
        stored.put("topic", r.topic());
        stored.put("partition", r.partition());
        stored.put("offset", r.offset());
      } else {
        try (PreparedStatement select =
            db.prepareStatement(
                "SELECT output, emitter_topic, emitter_partition, emitter_offset FROM kafka_effect WHERE id = ?")) {
          select.setString(1, id);
          try (ResultSet rs = select.executeQuery()) {
            rs.next();
            output = rs.getString(1);
            stored.put("topic", rs.getString(2));
            stored.put("partition", rs.getInt(3));
            stored.put("offset", rs.getLong(4));
          }
        }
      }
      db.commit();
    } catch (SQLException | RuntimeException e) {
      db.rollback();
      throw e;
    }
    event("tx", Map.of("id", id, "token", token, "first", first));
    stored.set("output", JSON.readTree(output));
    return JSON.writeValueAsBytes(stored);
  }

  private Verdict handle(ConsumerRecord<byte[], byte[]> r) throws IOException {
    Header header = r.headers().lastHeader("message-id");
    JsonNode order;
    try {
      order = JSON.readTree(r.value());
    } catch (IOException e) {
      order = null;
    }
    String id;
    if (header != null) {
      id = new String(header.value(), StandardCharsets.UTF_8);
    } else {
      id = order == null ? "" : order.path("id").asText();
    }
    if (order == null || id.isEmpty()) { // a poison record goes to the dead letters, its offset is committed
      producer.send(new ProducerRecord<>(opts.get("in") + ".dead", r.key(), r.value()));
      return Verdict.KEEP;
    }
    ClaimRequest claim =
        ClaimRequest.newBuilder()
            .setNamespace(opts.get("namespace"))
            .setId(ByteString.copyFromUtf8(id))
            .setLeaseMs(LEASE_MS)
            .build();
    EffectivelyOnce.Outcome outcome;
    JsonNode parsed = order;
    try {
      outcome = once.process(claim, lease -> apply(r, id, parsed, lease));
    } catch (Exception e) { // released (handler error) or the sidecar unreachable: redeliver
      event("error", Map.of("id", id, "kind", e.getClass().getSimpleName(), "msg", String.valueOf(e.getMessage())));
      return Verdict.ABORT;
    }
    event(
        "outcome",
        Map.of("id", id, "status", outcome.status().name(), "token", outcome.fencingToken(),
            "partition", r.partition(), "offset", r.offset()));
    switch (outcome.status()) {
      case PROCESSED, DUPLICATE -> {
        JsonNode stored = JSON.readTree(outcome.storedResult().orElseThrow());
        boolean mine =
            stored.path("topic").asText().equals(r.topic())
                && stored.path("partition").asInt() == r.partition()
                && stored.path("offset").asLong() == r.offset();
        if (!mine) { // a duplicate publish or a re-send after the window: the record named in the result emits
          String emitter = stored.path("partition") + "/" + stored.path("offset");
          event("skip", Map.of("id", id, "why", "emitted by " + emitter));
          return Verdict.KEEP;
        }
        ProducerRecord<byte[], byte[]> out =
            new ProducerRecord<>(opts.get("out"), id.getBytes(StandardCharsets.UTF_8),
                JSON.writeValueAsBytes(stored.get("output")));
        out.headers().add("message-id", id.getBytes(StandardCharsets.UTF_8));
        producer.send(out);
        event("emit", Map.of("id", id, "partition", r.partition(), "offset", r.offset()));
        return Verdict.KEEP;
      }
      case LEASE_LOST -> { // our commit was not recorded: the redelivery reads the final result; alert
        return Verdict.ABORT;
      }
      case CONFLICT -> { // the same id with other content: an upstream bug
        producer.send(new ProducerRecord<>(opts.get("in") + ".dead", r.key(), r.value()));
        return Verdict.KEEP;
      }
      default -> {
        return Verdict.ABORT; // IN_PROGRESS after the claim's wait: another consumer still holds it
      }
    }
  }

  /** Back to the committed offsets of every assigned partition (the aborted records come again). */
  private static void rewind(KafkaConsumer<byte[], byte[]> consumer) {
    Set<TopicPartition> assigned = consumer.assignment();
    Map<TopicPartition, OffsetAndMetadata> committed = consumer.committed(assigned);
    for (TopicPartition tp : assigned) {
      OffsetAndMetadata at = committed.get(tp);
      if (at == null) {
        consumer.seekToBeginning(List.of(tp));
      } else {
        consumer.seek(tp, at.offset());
      }
    }
  }

  private void run(KafkaConsumer<byte[], byte[]> consumer) throws Exception {
    consumer.subscribe(List.of(opts.get("in")));
    event("start", Map.of());
    System.out.printf("%s: consuming %s -> %s (group %s)%n", opts.get("name"), opts.get("in"), opts.get("out"),
        opts.get("group"));
    while (!stopping) {
      ConsumerRecords<byte[], byte[]> records;
      try {
        records = consumer.poll(Duration.ofMillis(500));
      } catch (WakeupException e) { // SIGTERM: between transactions, so nothing is left open
        return;
      }
      if (records.isEmpty()) {
        continue;
      }
      producer.beginTransaction();
      Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
      Verdict verdict = Verdict.KEEP;
      for (ConsumerRecord<byte[], byte[]> r : records) {
        verdict = handle(r);
        if (verdict == Verdict.ABORT) {
          break;
        }
        offsets.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
      }
      boolean committed = false;
      if (verdict == Verdict.KEEP) {
        try {
          producer.sendOffsetsToTransaction(offsets, consumer.groupMetadata());
          producer.commitTransaction();
          committed = true;
        } catch (ProducerFencedException e) {
          throw e; // another process took over this transactional id: stop
        } catch (KafkaException e) { // e.g. a rebalance fenced our generation: abort, start over
          event("error", Map.of("kind", e.getClass().getSimpleName(), "msg", String.valueOf(e.getMessage())));
        }
      }
      if (!committed) {
        producer.abortTransaction();
        rewind(consumer);
        Thread.sleep(RETRY_PAUSE.toMillis());
      }
      event("txn", Map.of("records", records.count(), "committed", committed, "tried", verdict == Verdict.KEEP));
    }
  }

  private static Map<String, String> parse(String[] args) {
    Map<String, String> opts = new HashMap<>();
    opts.put("brokers", "127.0.0.1:9092");
    opts.put("in", "in");
    opts.put("out", "out");
    opts.put("group", "orders");
    opts.put("target", "127.0.0.1:50051");
    opts.put("pg-dsn", "jdbc:postgresql://127.0.0.1:5432/orders?user=postgres");
    opts.put("namespace", "orders.kafka");
    opts.put("name", "java-" + ProcessHandle.current().pid());
    opts.put("events", "");
    for (int i = 0; i + 1 < args.length; i += 2) {
      String key = args[i].replaceFirst("^-+", "");
      if (!opts.containsKey(key) && !key.equals("txn-id")) {
        throw new IllegalArgumentException("unknown option " + args[i]);
      }
      opts.put(key, args[i + 1]);
    }
    opts.putIfAbsent("txn-id", opts.get("name"));
    return opts;
  }

  /** Creates the topics (4 partitions, replication factor 1) unless they exist, as the Go example does. */
  private static void ensureTopics(String brokers, String... topics) throws InterruptedException {
    try (Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, brokers))) {
      for (String topic : topics) {
        try {
          admin.createTopics(List.of(new NewTopic(topic, 4, (short) 1))).all().get();
        } catch (ExecutionException e) {
          if (!(e.getCause() instanceof TopicExistsException)) {
            throw new IllegalStateException("create topic " + topic, e.getCause());
          }
        }
      }
    }
  }

  public static void main(String[] args) throws Exception {
    Map<String, String> opts = parse(args);
    ensureTopics(opts.get("brokers"), opts.get("in"), opts.get("out"), opts.get("in") + ".dead");
    Properties c = new Properties();
    c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, opts.get("brokers"));
    c.put(ConsumerConfig.GROUP_ID_CONFIG, opts.get("group"));
    c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false"); // offsets go into the transaction
    c.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
    c.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    c.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "6000");
    c.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "50");
    c.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    c.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    Properties p = new Properties();
    p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, opts.get("brokers"));
    p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, opts.get("txn-id")); // stable per slot: fences a dead predecessor
    p.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, "20000");
    p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    String dsn = opts.get("pg-dsn");
    if (dsn.startsWith("postgresql://") || dsn.startsWith("postgres://")) {
      dsn = toJdbc(dsn);
    }
    FileOutputStream events = opts.get("events").isEmpty() ? null : new FileOutputStream(opts.get("events"), true);
    try (DedupClient client = DedupClient.builder(opts.get("target")).deadline(Duration.ofSeconds(5)).build();
        EffectivelyOnce once = new EffectivelyOnce(client);
        Connection db = DriverManager.getConnection(dsn);
        KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p);
        KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(c)) {
      producer.initTransactions();
      KafkaConsumerExample example = new KafkaConsumerExample(opts, once, db, producer, events);
      Thread main = Thread.currentThread();
      Thread hook =
          new Thread(
              () -> { // SIGTERM: finish the transaction in progress, then leave the group
                example.stopping = true;
                consumer.wakeup();
                try {
                  main.join(30_000);
                } catch (InterruptedException e) {
                  Thread.currentThread().interrupt();
                }
              });
      Runtime.getRuntime().addShutdownHook(hook);
      example.run(consumer);
    }
  }

  /** postgresql://user@host:port/db -> jdbc:postgresql://host:port/db?user=user (the libpq form the tests use). */
  static String toJdbc(String url) {
    String rest = url.substring(url.indexOf("://") + 3);
    String user = null;
    int at = rest.indexOf('@');
    if (at >= 0) {
      user = rest.substring(0, at);
      rest = rest.substring(at + 1);
    }
    String jdbc = "jdbc:postgresql://" + rest;
    if (user != null) {
      jdbc += (rest.contains("?") ? "&" : "?") + "user=" + user;
    }
    return jdbc;
  }
}
