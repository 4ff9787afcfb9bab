package meshadapter.crosslang;

import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import io.cloudevents.CloudEvent;
import io.cloudevents.kafka.KafkaMessageFactory;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.regex.Pattern;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * Reads every topic mesh-adapter writes (the topics of the event options in protos/, plus the
 * dead-letter topic), from the beginning to the end offsets of the moment it starts, decodes each
 * record as a CloudEvent with the CloudEvents SDK's Kafka binding, parses {@code data} as the typed
 * protobuf event and checks the key, the {@code ce_*} attributes and {@code traceparent} against the
 * protos. Prints one JSON object: every record read and every violation found.
 *
 * <pre>
 *   java -cp ... meshadapter.crosslang.EventConsumer --bootstrap 127.0.0.1:19092 [--prefix t1234.]
 *       [--dead-letter-topic meshadapter.deadletter] [--timeout-ms 30000]
 * </pre>
 *
 * <p>Exit status 0 when it could read (violations are part of the JSON), 1 when it could not, 2 on
 * usage errors.
 */
public final class EventConsumer {
  private static final Pattern TRACEPARENT = Pattern.compile("00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}");
  private static final String PROTOBUF = "application/protobuf; proto=";

  private final List<String> violations = new ArrayList<>();
  private final JsonArray records = new JsonArray();

  private EventConsumer() {}

  public static void main(String[] args) {
    Map<String, String> flags = new TreeMap<>();
    for (int i = 0; i + 1 < args.length; i += 2) {
      if (!args[i].startsWith("--")) {
        System.exit(usage("unexpected argument " + args[i]));
      }
      flags.put(args[i].substring(2), args[i + 1]);
    }
    if (args.length % 2 != 0 || !flags.containsKey("bootstrap")) {
      System.exit(usage("--bootstrap is required"));
    }
    String prefix = flags.getOrDefault("prefix", "");
    String deadLetter = prefix + flags.getOrDefault("dead-letter-topic", "meshadapter.deadletter");
    Duration timeout = Duration.ofMillis(Long.parseLong(flags.getOrDefault("timeout-ms", "30000")));
    try {
      EventConsumer consumer = new EventConsumer();
      consumer.readAll(flags.get("bootstrap"), prefix, deadLetter, timeout);
      JsonObject result = new JsonObject();
      result.add("records", consumer.records);
      JsonArray violations = new JsonArray();
      consumer.violations.forEach(violations::add);
      result.add("violations", violations);
      System.out.println(new GsonBuilder().serializeNulls().setPrettyPrinting().create().toJson(result));
      System.exit(0);
    } catch (Exception e) {
      System.err.println("event consumer: " + e);
      System.exit(1);
    }
  }

  private static int usage(String problem) {
    System.err.println(problem);
    System.err.println(
        "usage: EventConsumer --bootstrap HOST:PORT [--prefix P] [--dead-letter-topic T] [--timeout-ms N]");
    return 2;
  }

  private void readAll(String bootstrap, String prefix, String deadLetter, Duration timeout) {
    Map<String, EventContract.Route> routes = new TreeMap<>();
    EventContract.routesByTopic().forEach((topic, route) -> routes.put(prefix + topic, route));

    Properties config = new Properties();
    config.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    config.put(ConsumerConfig.ALLOW_AUTO_CREATE_TOPICS_CONFIG, "false");
    config.put(ConsumerConfig.CLIENT_ID_CONFIG, "crosslang-java-consumer");
    try (KafkaConsumer<byte[], byte[]> consumer =
        new KafkaConsumer<>(config, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
      List<TopicPartition> partitions = new ArrayList<>();
      List<String> topics = new ArrayList<>(routes.keySet());
      topics.add(deadLetter);
      for (String topic : topics) {
        List<PartitionInfo> infos = consumer.partitionsFor(topic, timeout);
        if (infos != null) {
          infos.forEach(p -> partitions.add(new TopicPartition(p.topic(), p.partition())));
        }
      }
      consumer.assign(partitions);
      consumer.seekToBeginning(partitions);
      Map<TopicPartition, Long> ends = consumer.endOffsets(partitions, timeout);
      Instant deadline = Instant.now().plus(timeout);
      while (partitions.stream().anyMatch(tp -> consumer.position(tp) < ends.get(tp))) {
        if (Instant.now().isAfter(deadline)) {
          throw new IllegalStateException("did not reach the end offsets within " + timeout);
        }
        for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(200))) {
          if (record.offset() < ends.get(new TopicPartition(record.topic(), record.partition()))) {
            check(record, record.topic().equals(deadLetter) ? null : routes.get(record.topic()));
          }
        }
      }
    }
  }

  /** Checks one record; {@code route} is null for the dead-letter topic. */
  private void check(ConsumerRecord<byte[], byte[]> record, EventContract.Route route) {
    String where = record.topic() + "/" + record.partition() + "@" + record.offset();
    JsonObject seen = new JsonObject();
    seen.addProperty("topic", record.topic());
    seen.addProperty("partition", record.partition());
    seen.addProperty("offset", record.offset());
    seen.addProperty("key", record.key() == null ? null : new String(record.key(), StandardCharsets.UTF_8));
    records.add(seen);

    CloudEvent event;
    try {
      event = KafkaMessageFactory.createReader(record).toEvent();
    } catch (RuntimeException e) {
      violations.add(where + ": not a CloudEvent: " + e.getMessage());
      return;
    }
    seen.addProperty("ce_id", event.getId());
    seen.addProperty("ce_type", event.getType());
    expect(where, "ce_specversion", "1.0", event.getSpecVersion().toString());
    if (!event.getSource().isAbsolute()) {
      violations.add(where + ": ce_source " + event.getSource() + " is not an absolute URI");
    }

    if (route == null) { // dead letter: the raw payload, the cause in headers
      expect(where, "ce_type", EventContract.DEAD_LETTER_TYPE, event.getType());
      expect(where, "content-type", "application/octet-stream", event.getDataContentType());
      if (header(record, "dlq_reason") == null) {
        violations.add(where + ": dlq_reason header missing");
      }
      return;
    }

    expect(where, "content-type", PROTOBUF + route.fullName(), event.getDataContentType());
    if (event.getTime() == null) {
      violations.add(where + ": ce_time missing");
    }
    String traceparent = header(record, "traceparent");
    if (traceparent == null) {
      violations.add(where + ": traceparent header missing");
    } else if (!TRACEPARENT.matcher(traceparent).matches() || traceparent.startsWith("00-" + "0".repeat(32))) {
      violations.add(where + ": traceparent " + traceparent + " is not a W3C trace context");
    }
    if (event.getData() == null) {
      violations.add(where + ": no data");
      return;
    }
    Message data;
    try {
      data = route.prototype().getParserForType().parseFrom(event.getData().toBytes());
    } catch (InvalidProtocolBufferException e) {
      violations.add(where + ": data is not a " + route.fullName() + ": " + e.getMessage());
      return;
    }
    seen.addProperty("message", data.getDescriptorForType().getFullName());
    if (!data.getUnknownFields().asMap().isEmpty()) {
      violations.add(where + ": data has fields " + route.fullName() + " does not know");
    }
    String key = route.expectedKey(data);
    expect(where, "key", key, record.key() == null ? null : new String(record.key(), StandardCharsets.UTF_8));
    expect(where, "ce_subject", key, event.getSubject());
    expect(where, "ce_type", route.expectedType(data), event.getType());
    if (!event.getId().startsWith(route.option().getSource() + ":")) {
      violations.add(where + ": ce_id " + event.getId() + " does not name its source " + route.option().getSource());
    }
  }

  private void expect(String where, String what, String expected, String actual) {
    if (!expected.equals(actual)) {
      violations.add(where + ": " + what + " is " + actual + ", expected " + expected);
    }
  }

  private static String header(ConsumerRecord<byte[], byte[]> record, String name) {
    Header header = record.headers().lastHeader(name);
    return header == null ? null : new String(header.value(), StandardCharsets.UTF_8);
  }
}
