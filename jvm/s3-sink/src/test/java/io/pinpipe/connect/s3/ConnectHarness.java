package io.pinpipe.connect.s3;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Future;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.metrics.PluginMetrics;
import org.apache.kafka.connect.errors.RetriableException;
import org.apache.kafka.connect.sink.ErrantRecordReporter;
import org.apache.kafka.connect.sink.SinkRecord;
import org.apache.kafka.connect.sink.SinkTaskContext;

/**
 * What a Connect worker (WorkerSinkTask) does to a sink task, in small steps: a topic log, a
 * consumer position and committed offset per partition, put() with the same batch again after a
 * RetriableException, preCommit() and its offsets, close/open on a rebalance, and a crash that
 * starts a new task from the committed offsets. One bucket (the fake store) outlives tasks.
 */
final class ConnectHarness {
    static final String TOPIC = "t";

    final FakeStore store = new FakeStore();
    final List<Map.Entry<SinkRecord, Throwable>> deadLetters = new ArrayList<>();
    final Map<String, String> props = new HashMap<>();
    final List<SinkRecord> log = new ArrayList<>();
    final Map<TopicPartition, Long> committed = new HashMap<>();
    final Map<TopicPartition, Long> position = new HashMap<>();
    long now = 1_000_000;
    int retries;
    JsonLinesS3SinkTask task;

    ConnectHarness(int windowRecords, int maxBytes) {
        props.put("s3.bucket.name", "lake");
        props.put("flush.max.records", String.valueOf(windowRecords));
        props.put("flush.max.bytes", String.valueOf(maxBytes));
        props.put("flush.interval.ms", "1000");
    }

    /** Appends a record to the topic log (the offsets are the caller's: gaps allowed). */
    ConnectHarness record(int partition, long offset, Object value) {
        log.add(new SinkRecord(TOPIC, partition, null, null, null, value, offset));
        return this;
    }

    /** Records {@code {"i":<offset>}} at each offset of partition 0. */
    ConnectHarness records(long... offsets) {
        for (long offset : offsets) {
            record(0, offset, "{\"i\":" + offset + "}");
        }
        return this;
    }

    Set<TopicPartition> partitions() {
        Set<TopicPartition> result = new LinkedHashSet<>();
        for (SinkRecord r : log) {
            result.add(tp(r));
        }
        return result;
    }

    static TopicPartition tp(SinkRecord r) {
        return new TopicPartition(r.topic(), r.kafkaPartition());
    }

    /** A new task (as after a worker crash or a task restart): positions back to the commits. */
    ConnectHarness start() {
        task = new JsonLinesS3SinkTask(config -> store, () -> now);
        task.initialize(new Context());
        task.start(props);
        rewind();
        task.open(partitions());
        return this;
    }

    private void rewind() {
        position.clear();
        position.putAll(committed);
    }

    /** The next {@code max} records past the consumer position, in log order. */
    List<SinkRecord> nextBatch(int max) {
        List<SinkRecord> batch = new ArrayList<>();
        for (SinkRecord r : log) {
            if (batch.size() < max && r.kafkaOffset() >= position.getOrDefault(tp(r), 0L)) {
                batch.add(r);
            }
        }
        return batch;
    }

    /** One poll-and-put: a RetriableException makes Connect put the same batch again. */
    int poll(int max) {
        List<SinkRecord> batch = nextBatch(max);
        for (int attempt = 0; ; attempt++) {
            try {
                task.put(batch);
                break;
            } catch (RetriableException e) {
                retries++;
                if (attempt > 200) {
                    throw new AssertionError("put never succeeded", e);
                }
            }
        }
        for (SinkRecord r : batch) {
            position.merge(tp(r), r.kafkaOffset() + 1, Math::max);
        }
        return batch.size();
    }

    /** One put that may fail; Connect retries it later, maybe after a commit or a rebalance. */
    void putOnce(int max) {
        List<SinkRecord> batch = nextBatch(max);
        try {
            task.put(batch);
        } catch (RetriableException e) {
            retries++;
            return;
        }
        for (SinkRecord r : batch) {
            position.merge(tp(r), r.kafkaOffset() + 1, Math::max);
        }
    }

    /** Polls until the whole log is delivered. */
    ConnectHarness drain(int batchSize) {
        while (poll(batchSize) > 0) {
            // keep polling
        }
        return this;
    }

    /**
     * An offset commit: preCommit with the consumer's positions; as in WorkerSinkTask, an offset
     * the task returns past a position ("not yet consumed") is ignored and the last stays.
     */
    Map<TopicPartition, Long> commit() {
        Map<TopicPartition, OffsetAndMetadata> current = new HashMap<>();
        position.forEach((tp, offset) -> current.put(tp, new OffsetAndMetadata(offset)));
        Map<TopicPartition, OffsetAndMetadata> safe = task.preCommit(current);
        safe.forEach((tp, offset) -> {
            if (current.containsKey(tp) && offset.offset() <= current.get(tp).offset()) {
                committed.put(tp, offset.offset());
            }
        });
        return Map.copyOf(committed);
    }

    long committed(int partition) {
        return committed.getOrDefault(new TopicPartition(TOPIC, partition), 0L);
    }

    /** A rebalance taking every partition away and giving it back: commit, close, open. */
    ConnectHarness rebalance() {
        commit();
        task.close(partitions());
        rewind();
        task.open(partitions());
        return this;
    }

    /** The worker dies: no commit, no close; a new task starts from the committed offsets. */
    ConnectHarness crash() {
        task = null;
        return start();
    }

    /** Time passes; an empty put lets the task write what has waited long enough. */
    ConnectHarness idle(long ms) {
        now += ms;
        for (int attempt = 0; ; attempt++) {
            try {
                task.put(List.of());
                return this;
            } catch (RetriableException e) {
                retries++;
                if (attempt > 200) {
                    throw new AssertionError("put never succeeded", e);
                }
            }
        }
    }

    private final class Context implements SinkTaskContext {
        @Override
        public Map<String, String> configs() {
            return props;
        }

        @Override
        public void offset(Map<TopicPartition, Long> offsets) {
            throw new UnsupportedOperationException("the sink never seeks");
        }

        @Override
        public void offset(TopicPartition tp, long offset) {
            throw new UnsupportedOperationException("the sink never seeks");
        }

        @Override
        public void timeout(long timeoutMs) {}

        @Override
        public Set<TopicPartition> assignment() {
            return partitions();
        }

        @Override
        public void pause(TopicPartition... partitions) {}

        @Override
        public void resume(TopicPartition... partitions) {}

        @Override
        public void requestCommit() {}

        @Override
        public ErrantRecordReporter errantRecordReporter() {
            return (record, error) -> {
                deadLetters.add(Map.entry(record, error));
                Future<Void> done = CompletableFuture.completedFuture(null);
                return done;
            };
        }

        @Override
        public PluginMetrics pluginMetrics() {
            throw new UnsupportedOperationException("the sink has no metrics");
        }
    }
}
