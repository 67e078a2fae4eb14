package io.pinpipe.connect.s3;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.pinpipe.connect.s3.ObjectStore.StoreException;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Collection;
import java.util.HashMap;
import java.util.Map;
import java.util.Optional;
import java.util.function.Function;
import java.util.function.LongSupplier;
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

/**
 * Lands each partition's records as JSON lines in objects named by offsets only, so that any
 * replay rewrites the same names with the same lines: nothing lost, nothing duplicated.
 *
 * <h2>Layout</h2>
 * Offsets are cut into aligned windows {@code [k*N, (k+1)*N)} ({@code flush.max.records} = N).
 * A window is normally one object, {@code <prefix>/<topic>/partition=<p>/<topic>+<p>+<k*N>.json}
 * (20-digit zero-padded, so names sort by offset). When appending a line would take the current
 * object past {@code flush.max.bytes}, that object is sealed as a <em>part</em> and the next
 * part is named by the offset of its own first record; a record larger than the cap is a part of
 * its own. Offsets missing from the topic (transaction markers, compaction, dead-lettered
 * records) simply leave no line: windows stay aligned to offsets, not to record counts.
 *
 * <h2>Why replays are deterministic</h2>
 * Where a part ends depends only on the lines of its window from the window's first record on.
 * The offset committed for a partition is the start of its open window while that window holds
 * any line (written or not), else everything consumed: so a restarted task always re-reads a
 * window from its beginning (or from a point before which the window has no line) and cuts the
 * same parts under the same names. An open part is written as it is once it has waited
 * {@code flush.interval.ms} (a quiet topic lands in bounded time) and rewritten, same name, as it
 * grows.
 *
 * <h2>Failures</h2>
 * Each record is processed atomically: every write it needs (sealing the previous window or
 * part) happens before it is buffered and before {@code next} moves past it. A failed write
 * throws {@link RetriableException}; Connect redelivers the same batch to this task, which skips
 * only the records it has already taken in and retries the pending write first. A failed write
 * in {@link #preCommit} is left for later and commits only what is safely written. After a
 * rebalance or a restart, state is rebuilt from the committed offsets.
 *
 * <h2>Layout changes</h2>
 * Changing N or the byte cap would cut the offsets of a partition differently, so objects of the
 * old and new layout would overlap. Every object carries its layout as user metadata; before its
 * first write to a partition the task reads the layout of the partition's first object and
 * stops with an error if it differs (land a new layout under another {@code s3.prefix}, bucket or
 * into an emptied partition folder).
 */
public final class JsonLinesS3SinkTask extends SinkTask {
    private static final Logger log = LoggerFactory.getLogger(JsonLinesS3SinkTask.class);
    private static final ObjectMapper JSON = new ObjectMapper();
    static final String META_WINDOW_RECORDS = "pinpipe-window-records";
    static final String META_PART_MAX_BYTES = "pinpipe-part-max-bytes";
    static final String META_LAST_OFFSET = "pinpipe-last-offset";

    /** The object being filled: one window, or one part of a window cut by the byte cap. */
    private static final class Part {
        final long start;
        final ByteArrayOutputStream lines = new ByteArrayOutputStream();
        long lastOffset = -1;
        int count;
        int writtenCount;
        long firstUnwrittenAtMs;
        /** Complete: nothing more is appended; it must be written before the partition moves on. */
        boolean sealed;
        /** Its window ends with it (as opposed to being cut by the byte cap). */
        boolean endsWindow;

        Part(long start) {
            this.start = start;
        }

        boolean dirty() {
            return count > writtenCount;
        }
    }

    /** What the task holds of one partition. */
    private static final class PartitionState {
        /** First offset not taken in yet; lower ones are redeliveries. -1: nothing taken in. */
        long next = -1;
        /** Start of the window being filled; -1 when no window holds a line. */
        long windowStart = -1;
        Part part;
        boolean layoutChecked;
    }

    private final Function<S3SinkConfig, ObjectStore> storeFactory;
    private final LongSupplier clock;
    private S3SinkConfig config;
    private ObjectStore store;
    private ErrantRecordReporter reporter;
    private final Map<TopicPartition, PartitionState> partitions = new HashMap<>();

    public JsonLinesS3SinkTask() {
        this(S3ObjectStore::new, System::currentTimeMillis);
    }

    /** For tests: another store and clock. */
    JsonLinesS3SinkTask(Function<S3SinkConfig, ObjectStore> storeFactory, LongSupplier clock) {
        this.storeFactory = storeFactory;
        this.clock = clock;
    }

    @Override
    public String version() {
        return JsonLinesS3SinkConnector.VERSION;
    }

    @Override
    public void start(Map<String, String> props) {
        config = new S3SinkConfig(props);
        store = storeFactory.apply(config);
        reporter = context.errantRecordReporter();
    }

    /** The record's value as one JSON-object line, byte for byte as produced. */
    static byte[] jsonObjectLine(Object value) {
        byte[] bytes;
        if (value instanceof byte[] raw) {
            bytes = raw;
        } else if (value instanceof String text) {
            bytes = text.getBytes(StandardCharsets.UTF_8);
        } else if (value == null) {
            throw new DataException("value is null (a tombstone): nothing to land");
        } else {
            throw new DataException("value is a " + value.getClass().getSimpleName()
                + ", not a string or bytes (use StringConverter)");
        }
        JsonNode node;
        try (JsonParser parser = JSON.createParser(bytes)) {
            node = JSON.readTree(parser);
            if (node == null) {
                throw new DataException("value is empty");
            }
            if (!node.isObject()) {
                throw new DataException("value is JSON but not an object: "
                    + node.getNodeType().toString().toLowerCase());
            }
            // one object and nothing after it: a second object or junk would be cut or lost
            if (!reachedEnd(parser)) {
                throw new DataException("value is not a single JSON object: content follows it");
            }
        } catch (IOException e) {
            String reason = e instanceof JsonProcessingException json
                ? json.getOriginalMessage() : e.getMessage();
            throw new DataException("value is not valid JSON: " + reason, e);
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

    private static boolean reachedEnd(JsonParser parser) {
        try {
            return parser.nextToken() == null;
        } catch (IOException e) {
            return false; // junk after the object
        }
    }

    @Override
    public void put(Collection<SinkRecord> records) {
        for (SinkRecord record : records) {
            TopicPartition tp = new TopicPartition(record.topic(), record.kafkaPartition());
            PartitionState state = partitions.computeIfAbsent(tp, k -> new PartitionState());
            long offset = record.kafkaOffset();
            if (offset < state.next) {
                continue; // redelivered after a retriable failure: already taken in
            }
            byte[] line;
            try {
                line = jsonObjectLine(record.value());
            } catch (DataException e) {
                if (reporter == null) {
                    throw e;
                }
                reporter.report(record, e); // to the dead-letter topic, with the reason in headers
                state.next = offset + 1;
                continue;
            }
            append(tp, state, offset, line); // throws before taking the record in, or not at all
            state.next = offset + 1;
        }
        writeDue(true);
    }

    private void append(TopicPartition tp, PartitionState state, long offset, byte[] line) {
        if (!state.layoutChecked) {
            checkLayout(tp);
            state.layoutChecked = true;
        }
        long size = config.windowSize();
        long windowStart = offset - Math.floorMod(offset, size);
        if (state.windowStart >= 0 && windowStart != state.windowStart) {
            // a record past the open window: that window is complete
            if (state.part != null) {
                state.part.sealed = true;
                state.part.endsWindow = true;
                writeSealed(tp, state);
            }
            state.windowStart = -1;
        }
        if (state.part != null && state.part.sealed) {
            writeSealed(tp, state); // sealed by an earlier record whose write failed
        }
        Part part = state.part;
        if (part != null && part.count > 0
                && (long) part.lines.size() + line.length + 1 > config.partMaxBytes()) {
            part.sealed = true;
            writeSealed(tp, state);
        }
        // everything that can fail is done: from here on the record is taken in
        if (state.part == null) {
            // a window's first part is named by the window; a later part by its first record
            state.part = new Part(state.windowStart < 0 ? windowStart : offset);
        }
        state.windowStart = windowStart;
        part = state.part;
        if (!part.dirty()) {
            part.firstUnwrittenAtMs = clock.getAsLong();
        }
        part.lines.write(line, 0, line.length);
        part.lines.write('\n');
        part.count++;
        part.lastOffset = offset;
        if (offset == windowStart + size - 1) {
            part.sealed = true;
            part.endsWindow = true;
        }
    }

    /** Stops the task if the partition's objects were cut with another layout. */
    private void checkLayout(TopicPartition tp) {
        String folder = objectKey(config.prefix(), tp, 0);
        folder = folder.substring(0, folder.lastIndexOf('/') + 1);
        Map<String, String> found;
        String key;
        try {
            Optional<String> first = store.firstKey(folder);
            if (first.isEmpty()) {
                return;
            }
            key = first.get();
            found = store.metadata(key);
        } catch (StoreException e) {
            throw new RetriableException(e.getMessage(), e);
        }
        String records = found.get(META_WINDOW_RECORDS);
        String bytes = found.get(META_PART_MAX_BYTES);
        if (records == null || bytes == null) {
            log.warn("{} carries no layout metadata (written by an older sink): not checked", key);
            return;
        }
        if (!records.equals(String.valueOf(config.windowSize()))
                || !bytes.equals(String.valueOf(config.partMaxBytes()))) {
            throw new ConnectException(String.format(
                "%s was cut with flush.max.records=%s, flush.max.bytes=%s but the connector has"
                    + " flush.max.records=%d, flush.max.bytes=%d: objects would overlap. Keep the"
                    + " old values, or land into another s3.prefix or bucket.",
                key, records, bytes, config.windowSize(), config.partMaxBytes()));
        }
    }

    static String objectKey(String prefix, TopicPartition tp, long start) {
        String folder = prefix.isEmpty() ? "" : (prefix.endsWith("/") ? prefix : prefix + "/");
        return String.format("%s%s/partition=%d/%s+%d+%020d.json",
            folder, tp.topic(), tp.partition(), tp.topic(), tp.partition(), start);
    }

    /** Writes the part as it is now; throws {@link RetriableException} on failure. */
    private void write(TopicPartition tp, Part part) {
        String key = objectKey(config.prefix(), tp, part.start);
        Map<String, String> metadata = Map.of(
            META_WINDOW_RECORDS, String.valueOf(config.windowSize()),
            META_PART_MAX_BYTES, String.valueOf(config.partMaxBytes()),
            META_LAST_OFFSET, String.valueOf(part.lastOffset));
        try {
            store.put(key, part.lines.toByteArray(), metadata);
        } catch (StoreException e) {
            // state is as before the call: Connect redelivers the batch and the write is retried
            throw new RetriableException(e.getMessage(), e);
        }
        part.writtenCount = part.count;
        log.info("wrote {} ({} records up to offset {})", key, part.count, part.lastOffset);
    }

    private void writeSealed(TopicPartition tp, PartitionState state) {
        Part part = state.part;
        if (part.dirty()) {
            write(tp, part);
        }
        state.part = null;
        if (part.endsWindow) {
            state.windowStart = -1;
        }
    }

    /** Writes sealed parts and open parts that waited the flush interval; the first failure is
     * thrown after every partition had its turn, or only logged when {@code raise} is false. */
    private void writeDue(boolean raise) {
        long now = clock.getAsLong();
        RetriableException failed = null;
        for (Map.Entry<TopicPartition, PartitionState> entry : partitions.entrySet()) {
            PartitionState state = entry.getValue();
            Part part = state.part;
            if (part == null) {
                continue;
            }
            try {
                if (part.sealed) {
                    writeSealed(entry.getKey(), state);
                } else if (part.dirty() && now - part.firstUnwrittenAtMs >= config.flushIntervalMs()) {
                    write(entry.getKey(), part);
                }
            } catch (RetriableException e) {
                failed = failed == null ? e : failed;
            }
        }
        if (failed != null) {
            if (raise) {
                throw failed;
            }
            log.warn("write before an offset commit failed; committing only what is written", failed);
        }
    }

    @Override
    public Map<TopicPartition, OffsetAndMetadata> preCommit(
            Map<TopicPartition, OffsetAndMetadata> current) {
        // throwing here would make Connect rewind to the last commit: write what is due, and
        // commit no further than what is written whatever happened
        writeDue(false);
        Map<TopicPartition, OffsetAndMetadata> safe = new HashMap<>();
        for (Map.Entry<TopicPartition, OffsetAndMetadata> entry : current.entrySet()) {
            PartitionState state = partitions.get(entry.getKey());
            if (state != null && state.windowStart >= 0) {
                // re-read from the open window's start on restart, to cut it the same way
                safe.put(entry.getKey(), new OffsetAndMetadata(state.windowStart));
            } else if (state != null && state.next >= 0) {
                // everything taken in is written or dead-lettered. Not Connect's position: after
                // a failed batch it can lie inside a window already written, and a replay from
                // there would overwrite that object with its tail. Connect ignores an offset
                // past its position and keeps the last commit, which is safe.
                safe.put(entry.getKey(), new OffsetAndMetadata(state.next));
            } else {
                safe.put(entry.getKey(), entry.getValue()); // nothing taken in since open()
            }
        }
        return safe;
    }

    @Override
    public void open(Collection<TopicPartition> assigned) {
        for (TopicPartition tp : assigned) {
            partitions.put(tp, new PartitionState());
        }
    }

    @Override
    public void close(Collection<TopicPartition> revoked) {
        for (TopicPartition tp : revoked) {
            // unwritten records are re-read from the committed offset by the next owner
            partitions.remove(tp);
        }
    }

    @Override
    public void stop() {
        if (store != null) {
            store.close();
        }
    }
}
