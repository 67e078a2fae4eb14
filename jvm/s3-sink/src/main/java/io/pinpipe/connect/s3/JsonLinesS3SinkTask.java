package io.pinpipe.connect.s3;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.Collection;
import java.util.HashMap;
import java.util.Map;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.connect.errors.ConnectException;
import org.apache.kafka.connect.errors.DataException;
import org.apache.kafka.connect.errors.RetriableException;
import org.apache.kafka.connect.sink.ErrantRecordReporter;
import org.apache.kafka.connect.sink.SinkRecord;
import org.apache.kafka.connect.sink.SinkTask;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.awscore.retry.AwsRetryStrategy;
import software.amazon.awssdk.core.exception.SdkException;
import software.amazon.awssdk.core.sync.RequestBody;
import software.amazon.awssdk.http.urlconnection.UrlConnectionHttpClient;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.s3.S3Client;
import software.amazon.awssdk.services.s3.S3ClientBuilder;
import software.amazon.awssdk.services.s3.model.PutObjectRequest;

/**
 * Buffers each partition's records in aligned offset windows [k*N, (k+1)*N) and writes window k
 * as the object {@code <prefix>/<topic>/partition=<p>/<topic>+<p>+<k*N>.json}.
 *
 * <p>Why aligned windows: an object's name depends only on the offsets it holds, never on when
 * a flush happened, so a replay after a crash rewrites the same names with the same lines —
 * nothing lost, nothing duplicated. A window still open when the flush interval passes is
 * written as it is (a quiet topic lands in bounded time) and rewritten when it grows; the
 * consumer offset is committed only up to the start of the open window, so a restart re-reads
 * exactly the records needed to rebuild it.
 */
public final class JsonLinesS3SinkTask extends SinkTask {
    private static final Logger log = LoggerFactory.getLogger(JsonLinesS3SinkTask.class);
    private static final ObjectMapper JSON = new ObjectMapper();

    /** The open window of one partition. */
    private static final class Window {
        final ByteArrayOutputStream lines = new ByteArrayOutputStream();
        long start = -1;
        long lastOffset = -1;
        int count;
        int writtenCount;
        long firstUnwrittenAtMs;

        boolean dirty() {
            return count > writtenCount;
        }

        void reset() {
            lines.reset();
            start = -1;
            count = 0;
            writtenCount = 0;
        }
    }

    private S3SinkConfig config;
    private S3Client s3;
    private ErrantRecordReporter reporter;
    private final Map<TopicPartition, Window> windows = new HashMap<>();
    /** Next offset each partition expects; lower ones are redeliveries already buffered. */
    private final Map<TopicPartition, Long> nextOffset = new HashMap<>();

    @Override
    public String version() {
        return JsonLinesS3SinkConnector.VERSION;
    }

    @Override
    public void start(Map<String, String> props) {
        config = new S3SinkConfig(props);
        S3ClientBuilder builder = S3Client.builder()
            .httpClientBuilder(UrlConnectionHttpClient.builder())
            .region(Region.of(config.region()))
            .forcePathStyle(config.pathStyle())
            .overrideConfiguration(c -> c.retryStrategy(
                AwsRetryStrategy.standardRetryStrategy().toBuilder()
                    .maxAttempts(config.retryMaxAttempts()).build()));
        if (!config.endpoint().isEmpty()) {
            builder.endpointOverride(URI.create(config.endpoint()));
        }
        if (!config.accessKey().isEmpty()) {
            builder.credentialsProvider(StaticCredentialsProvider.create(
                AwsBasicCredentials.create(config.accessKey(), config.secretKey())));
        } else {
            builder.credentialsProvider(DefaultCredentialsProvider.builder().build());
        }
        s3 = builder.build();
        reporter = context.errantRecordReporter();
    }

    /** The record's value as one JSON-object line, byte for byte as produced. */
    static byte[] jsonObjectLine(Object value) {
        byte[] bytes;
        if (value instanceof byte[] raw) {
            bytes = raw;
        } else if (value instanceof String text) {
            bytes = text.getBytes(StandardCharsets.UTF_8);
        } else {
            throw new DataException("value must be a string or bytes (use StringConverter), got "
                + (value == null ? "null" : value.getClass().getSimpleName()));
        }
        JsonNode node;
        try {
            node = JSON.readTree(bytes);
        } catch (IOException e) {
            String reason = e instanceof JsonProcessingException json
                ? json.getOriginalMessage() : e.getMessage();
            throw new DataException("value is not valid JSON: " + reason, e);
        }
        if (node == null || !node.isObject()) {
            throw new DataException("value is JSON but not an object: "
                + (node == null ? "empty" : node.getNodeType().toString().toLowerCase()));
        }
        for (byte b : bytes) {
            if (b == '\n' || b == '\r') {
                // a pretty-printed object: re-serialize compactly to keep one record per line
                try {
                    return JSON.writeValueAsBytes(node);
                } catch (JsonProcessingException e) {
                    throw new DataException("cannot re-serialize value", e);
                }
            }
        }
        return bytes;
    }

    @Override
    public void put(Collection<SinkRecord> records) {
        for (SinkRecord record : records) {
            TopicPartition tp = new TopicPartition(record.topic(), record.kafkaPartition());
            long offset = record.kafkaOffset();
            if (offset < nextOffset.getOrDefault(tp, Long.MIN_VALUE)) {
                continue; // redelivered after a retriable failure: already buffered
            }
            nextOffset.put(tp, offset + 1);
            byte[] line;
            try {
                line = jsonObjectLine(record.value());
            } catch (DataException e) {
                if (reporter == null) {
                    throw e;
                }
                reporter.report(record, e); // to the dead-letter topic, with the reason in headers
                continue;
            }
            append(tp, offset, line);
        }
        writeExpiredWindows();
    }

    private void append(TopicPartition tp, long offset, byte[] line) {
        Window window = windows.computeIfAbsent(tp, k -> new Window());
        long size = config.windowSize();
        long start = offset - Math.floorMod(offset, size);
        if (window.count > 0 && start != window.start) {
            close(tp, window); // a record past the open window: that window is complete
        }
        if (window.count == 0) {
            window.start = start;
        }
        if (!window.dirty()) {
            window.firstUnwrittenAtMs = System.currentTimeMillis();
        }
        window.lines.write(line, 0, line.length);
        window.lines.write('\n');
        window.count++;
        window.lastOffset = offset;
        if (offset == start + size - 1) {
            close(tp, window);
        }
    }

    static String objectKey(String prefix, TopicPartition tp, long start) {
        String folder = prefix.isEmpty() ? "" : (prefix.endsWith("/") ? prefix : prefix + "/");
        return String.format("%s%s/partition=%d/%s+%d+%020d.json",
            folder, tp.topic(), tp.partition(), tp.topic(), tp.partition(), start);
    }

    private void write(TopicPartition tp, Window window) {
        if (!window.dirty()) {
            return;
        }
        String key = objectKey(config.prefix(), tp, window.start);
        try {
            s3.putObject(
                PutObjectRequest.builder().bucket(config.bucket()).key(key)
                    .contentType("application/x-ndjson").build(),
                RequestBody.fromBytes(window.lines.toByteArray()));
        } catch (SdkException e) {
            // buffers stay as they are; Connect redelivers the batch and put() skips what it has
            throw new RetriableException("writing s3://" + config.bucket() + "/" + key + " failed", e);
        }
        window.writtenCount = window.count;
        log.info("wrote s3://{}/{} ({} records up to offset {})",
            config.bucket(), key, window.count, window.lastOffset);
    }

    private void close(TopicPartition tp, Window window) {
        write(tp, window);
        window.reset();
    }

    private void writeExpiredWindows() {
        long now = System.currentTimeMillis();
        for (Map.Entry<TopicPartition, Window> entry : windows.entrySet()) {
            Window window = entry.getValue();
            if (window.dirty() && now - window.firstUnwrittenAtMs >= config.flushIntervalMs()) {
                write(entry.getKey(), window);
            }
        }
    }

    @Override
    public Map<TopicPartition, OffsetAndMetadata> preCommit(
            Map<TopicPartition, OffsetAndMetadata> current) {
        writeExpiredWindows();
        Map<TopicPartition, OffsetAndMetadata> safe = new HashMap<>();
        for (Map.Entry<TopicPartition, OffsetAndMetadata> entry : current.entrySet()) {
            TopicPartition tp = entry.getKey();
            Window window = windows.get(tp);
            if (window != null && window.count > 0) {
                // re-read from the open window's start on restart, to rebuild it whole
                safe.put(tp, new OffsetAndMetadata(window.start));
            } else {
                // every consumed record is in a closed, written window or was dead-lettered
                safe.put(tp, entry.getValue());
            }
        }
        return safe;
    }

    @Override
    public void open(Collection<TopicPartition> partitions) {
        for (TopicPartition tp : partitions) {
            windows.put(tp, new Window());
            nextOffset.remove(tp);
        }
    }

    @Override
    public void close(Collection<TopicPartition> partitions) {
        for (TopicPartition tp : partitions) {
            // unwritten records are re-read from the committed offset by the next owner
            windows.remove(tp);
            nextOffset.remove(tp);
        }
    }

    @Override
    public void stop() {
        if (s3 != null) {
            s3.close();
        }
    }
}
