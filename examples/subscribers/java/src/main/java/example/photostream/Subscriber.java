package example.photostream;

import java.io.BufferedWriter;
import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.*;
import java.time.Duration;
import java.util.*;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * A downstream service's subscriber to photo-ready, with kafka-clients and avro only: the .avsc
 * files are the whole contract. Environment, output and commit order are in ../README.md.
 */
public final class Subscriber {
    private static final String TOPIC = "photo-ready";
    private static volatile boolean stopped;

    public static void main(String[] args) throws Exception {
        // Before any library logs: slf4j-simple to stderr, warnings only, so stdout stays pure JSON.
        System.setProperty("org.slf4j.simpleLogger.logFile", "System.err");
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");

        BinaryMessageDecoder<GenericRecord> decoder = decoder(schemasDir());
        Path seenFile = Path.of(env("SEEN_FILE", "seen-event-ids.txt"));
        Set<String> seen = Files.exists(seenFile) ? new HashSet<>(Files.readAllLines(seenFile)) : new HashSet<>();
        String idle = System.getenv("EXIT_WHEN_IDLE_SECONDS");
        long idleNanos = idle == null || idle.isBlank() ? -1 : (long) (Double.parseDouble(idle) * 1e9);

        Properties config = new Properties();
        config.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, env("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"));
        config.put(ConsumerConfig.GROUP_ID_CONFIG, env("GROUP_ID", "example-subscriber"));
        config.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest"); // a new group starts at the oldest event
        config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false"); // we commit once a batch is handled
        config.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        config.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());

        KafkaConsumer<String, byte[]> consumer = new KafkaConsumer<>(config);
        // SIGINT/SIGTERM: wake the consumer out of poll() and wait until main has committed and closed.
        Thread main = Thread.currentThread();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            if (!stopped) consumer.wakeup();
            try { main.join(); } catch (InterruptedException ignored) { }
            // A stop we were asked for and completed is a success: 0, not the JVM's 143 for "killed".
            if (stopped) Runtime.getRuntime().halt(0);
        }));

        long[] lastActivity = {System.nanoTime()};
        try (consumer; BufferedWriter seenLog = Files.newBufferedWriter(seenFile, StandardCharsets.UTF_8,
                StandardOpenOption.CREATE, StandardOpenOption.APPEND)) {
            consumer.subscribe(List.of(TOPIC), new ConsumerRebalanceListener() {
                // Joining the group takes a moment; idle time counts from being given partitions too.
                public void onPartitionsAssigned(Collection<TopicPartition> p) { lastActivity[0] = System.nanoTime(); }
                public void onPartitionsRevoked(Collection<TopicPartition> p) { }
            });
            try {
                while (true) {
                    ConsumerRecords<String, byte[]> records = consumer.poll(Duration.ofMillis(500));
                    if (records.isEmpty()) {
                        if (idleNanos >= 0 && System.nanoTime() - lastActivity[0] >= idleNanos) break;
                        continue;
                    }
                    lastActivity[0] = System.nanoTime();
                    for (ConsumerRecord<String, byte[]> record : records) handle(record, decoder, seen, seenLog);
                    // At least once: the batch is handled and its ids are on disk before the offsets move.
                    consumer.commitSync();
                }
            } catch (WakeupException stopping) {
                // Asked to stop; every record poll() returned has been handled, so commit below.
            }
            consumer.commitSync();
        } // close() leaves the group, so its partitions move to the other members at once
        stopped = true;
    }

    static void handle(ConsumerRecord<String, byte[]> record, BinaryMessageDecoder<GenericRecord> decoder,
            Set<String> seen, BufferedWriter seenLog) throws IOException {
        GenericRecord event;
        try {
            if (record.value() == null) throw new IOException("no value");
            // C3 01, the writer schema's fingerprint, the body: resolved into the current ImageReady.
            event = decoder.decode(record.value());
        } catch (IOException | RuntimeException e) { // bad magic, unknown fingerprint, truncated body...
            // Avro wraps a truncated body's EOFException in "Decoding datum failed": show both.
            String cause = e.getCause() == null ? "" : " (" + e.getCause() + ")";
            System.err.printf("partition %d offset %d: cannot decode: %s: %s%s%n",
                    record.partition(), record.offset(), e.getClass().getSimpleName(), e.getMessage(), cause);
            return; // skipped, and committed past with the rest of the batch: a bad message is never fatal
        }
        String eventId = event.get("event_id").toString(); // Avro strings arrive as Utf8: toString()
        boolean duplicate = seen.contains(eventId);
        List<String> keys = new ArrayList<>();
        for (Object variant : (List<?>) event.get("variants")) {
            keys.add(((GenericRecord) variant).get("key").toString()); // the S3 key of each stored variant
        }
        Collections.sort(keys);
        long readyAt = (Long) event.get("ready_at"); // milliseconds since the epoch
        // The service's real work goes here, before its id is recorded and its offset committed.
        System.out.println("{\"partition\": " + record.partition() + ", \"offset\": " + record.offset()
                + ", \"event_id\": " + json(eventId) + ", \"upload_id\": " + json(event.get("upload_id"))
                + ", \"photographer_id\": " + json(event.get("photographer_id"))
                + ", \"variant_keys\": [" + String.join(", ", keys.stream().map(Subscriber::json).toList()) + "]"
                + ", \"ready_at\": " + readyAt + ", \"duplicate\": " + duplicate + "}");
        System.out.flush();
        if (!duplicate) {
            seen.add(eventId);
            seenLog.write(eventId + "\n");
            seenLog.flush();
        }
    }

    /** The reader is the current schema; each history file is a writer schema old events may carry. */
    static BinaryMessageDecoder<GenericRecord> decoder(Path dir) throws IOException {
        // A fresh Schema.Parser per file, since every file defines the same name, ImageReady.
        Schema current = new Schema.Parser().parse(dir.resolve("ImageReady.avsc").toFile());
        // GenericData.get() has no logical-type conversions: uuid stays a string, timestamp-millis a long.
        BinaryMessageDecoder<GenericRecord> decoder = new BinaryMessageDecoder<>(GenericData.get(), current);
        try (DirectoryStream<Path> files = Files.newDirectoryStream(dir.resolve("history"), "ImageReady.v*.avsc")) {
            for (Path file : files) decoder.addSchema(new Schema.Parser().parse(file.toFile()));
        }
        return decoder;
    }

    /** SCHEMAS_DIR, else the first schemas/ above this jar, else above the working directory. */
    static Path schemasDir() throws URISyntaxException {
        String fromEnv = System.getenv("SCHEMAS_DIR");
        if (fromEnv != null && !fromEnv.isBlank()) return Path.of(fromEnv);
        Path jar = Path.of(Subscriber.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        for (Path start : List.of(jar.toAbsolutePath(), Path.of("").toAbsolutePath())) {
            for (Path dir = start; dir != null; dir = dir.getParent()) {
                if (Files.isRegularFile(dir.resolve("schemas/ImageReady.avsc"))) return dir.resolve("schemas");
            }
        }
        System.err.println("no schemas/ImageReady.avsc above this program: set SCHEMAS_DIR");
        System.exit(2);
        return null;
    }

    static String env(String name, String fallback) {
        String value = System.getenv(name);
        return value == null || value.isEmpty() ? fallback : value;
    }

    /** A JSON string literal. */
    static String json(Object value) {
        StringBuilder out = new StringBuilder("\"");
        for (char c : value.toString().toCharArray()) {
            if (c == '"' || c == '\\') out.append('\\').append(c);
            else if (c < 0x20) out.append(String.format("\\u%04x", (int) c));
            else out.append(c);
        }
        return out.append('"').toString();
    }
}
