package io.pinpipe.connect.s3;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.stream.Collectors;
import java.util.stream.LongStream;
import org.apache.kafka.connect.errors.ConnectException;
import org.apache.kafka.connect.errors.DataException;
import org.apache.kafka.connect.errors.RetriableException;
import org.apache.kafka.connect.sink.SinkRecord;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class JsonLinesS3SinkTaskTest {
    private static final int NO_BYTE_CAP = 1 << 20;

    static String key(int partition, long start) {
        return String.format("topics/t/partition=%d/t+%d+%020d.json", partition, partition, start);
    }

    static List<String> lines(long... offsets) {
        return LongStream.of(offsets).mapToObj(o -> "{\"i\":" + o + "}").toList();
    }

    static long[] range(long from, long to) {
        return LongStream.range(from, to).toArray();
    }

    @SafeVarargs
    static Map<String, List<String>> objects(Map.Entry<String, List<String>>... entries) {
        Map<String, List<String>> result = new TreeMap<>();
        for (Map.Entry<String, List<String>> entry : entries) {
            result.put(entry.getKey(), entry.getValue());
        }
        return result;
    }

    // -- the reviewer's case and other failing writes -------------------------------------------

    @Test
    void aFailedWriteAtAWindowBoundaryIsRetriedAndLosesNothing() {
        // N=4: window [0,4) is complete at offset 3; its write fails twice, then the record
        // after it (offset 4) must still be taken in exactly once.
        ConnectHarness h = new ConnectHarness(4, NO_BYTE_CAP).records(range(0, 12)).start();
        h.store.failNext(k -> k.equals(key(0, 0)), 2);
        h.poll(3); // 0,1,2
        h.poll(3); // 3 (window complete: write fails), 4, 5
        h.drain(3);
        assertEquals(2, h.retries);
        assertEquals(objects(
            Map.entry(key(0, 0), lines(0, 1, 2, 3)),
            Map.entry(key(0, 4), lines(4, 5, 6, 7)),
            Map.entry(key(0, 8), lines(8, 9, 10, 11))), h.store.lines());
        h.commit();
        assertEquals(12, h.committed(0));
        assertTrue(h.deadLetters.isEmpty());
    }

    @Test
    void aFailedWriteOfThePreviousWindowDoesNotSkipTheRecordThatClosedIt() {
        // the window is closed by the next record (offset 3 is missing: a transaction marker)
        ConnectHarness h = new ConnectHarness(4, NO_BYTE_CAP).records(0, 1, 2, 4, 5, 6, 7).start();
        h.poll(3);
        h.store.failNext(k -> k.equals(key(0, 0)), 3);
        h.poll(10);
        assertEquals(3, h.retries);
        assertEquals(objects(
            Map.entry(key(0, 0), lines(0, 1, 2)),
            Map.entry(key(0, 4), lines(4, 5, 6, 7))), h.store.lines());
        h.commit();
        assertEquals(8, h.committed(0));
    }

    @Test
    void aFailedMidWindowWriteIsRetriedOnRedeliveryWithoutDuplicates() {
        ConnectHarness h = new ConnectHarness(4, NO_BYTE_CAP).records(range(0, 8)).start();
        h.poll(2); // 0,1 buffered, not yet due
        assertTrue(h.store.objects.isEmpty());
        h.now += 1000;
        h.store.failNext(k -> k.equals(key(0, 0)), 1);
        h.poll(1); // 2 taken in, then the due write of [0,1,2] fails: same batch again
        assertEquals(1, h.retries);
        assertEquals(objects(Map.entry(key(0, 0), lines(0, 1, 2))), h.store.lines());
        h.commit();
        assertEquals(0, h.committed(0), "the open window is re-read from its start");
        h.drain(10);
        h.commit();
        assertEquals(objects(
            Map.entry(key(0, 0), lines(0, 1, 2, 3)),
            Map.entry(key(0, 4), lines(4, 5, 6, 7))), h.store.lines());
        assertEquals(8, h.committed(0));
    }

    @Test
    void aBatchFailingOnAnotherPartitionNeverCommitsIntoAWrittenWindow() {
        // p0's window [0,4) is written within a batch that fails on p1: Connect's position for
        // p0 stays at 2, inside that window; committing 2 would make a replay overwrite
        // object 0 with offsets 2 and 3 only
        ConnectHarness h = new ConnectHarness(4, NO_BYTE_CAP)
            .record(1, 0, "{\"p1\":0}").records(0, 1, 2, 3, 4);
        h.start();
        h.poll(3);
        h.commit();
        h.now += 1000; // p1's open window is due at the end of the next put; its write fails
        h.store.failNext(k -> k.equals(key(1, 0)), 1);
        assertThrows(RetriableException.class, () -> h.task.put(h.nextBatch(2)));
        assertEquals(objects(Map.entry(key(0, 0), lines(0, 1, 2, 3))), h.store.lines());
        h.commit();
        assertEquals(0, h.committed(0));
        h.crash().drain(10).idle(1000).commit();
        assertEquals(objects(
            Map.entry(key(0, 0), lines(0, 1, 2, 3)),
            Map.entry(key(0, 4), lines(4)),
            Map.entry(key(1, 0), List.of("{\"p1\":0}"))), h.store.lines());
        assertEquals(4, h.committed(0));
    }

    @Test
    void aFailedWriteInPreCommitCommitsOnlyWhatIsWritten() {
        ConnectHarness h = new ConnectHarness(4, NO_BYTE_CAP).records(range(0, 6)).start();
        h.poll(6); // [0..3] written, 4,5 open
        h.now += 1000;
        h.store.failNext(k -> k.equals(key(0, 4)), 1);
        h.commit(); // does not throw: Connect would otherwise rewind the consumer
        assertEquals(4, h.committed(0));
        assertEquals(objects(Map.entry(key(0, 0), lines(0, 1, 2, 3))), h.store.lines());
        h.commit();
        assertEquals(objects(
            Map.entry(key(0, 0), lines(0, 1, 2, 3)),
            Map.entry(key(0, 4), lines(4, 5))), h.store.lines());
        assertEquals(4, h.committed(0), "still open: re-read from its start after a restart");
    }

    @Test
    void aDeadLetterInAFailedBatchIsReportedOnce() {
        ConnectHarness h = new ConnectHarness(2, NO_BYTE_CAP)
            .record(0, 0, "{\"i\":0}").record(0, 1, "{\"i\":1}")
            .record(0, 2, "oops").record(0, 3, "{\"i\":3}").start();
        h.store.failNext(k -> k.equals(key(0, 0)), 2);
        h.drain(10);
        assertEquals(2, h.retries);
        assertEquals(1, h.deadLetters.size());
        assertEquals(2, h.deadLetters.get(0).getKey().kafkaOffset());
        h.idle(1000);
        assertEquals(objects(
            Map.entry(key(0, 0), lines(0, 1)),
            Map.entry(key(0, 2), lines(3))), h.store.lines());
    }

    // -- offsets that jump ---------------------------------------------------------------------

    @Test
    void offsetGapsKeepWindowsAligned() {
        // transaction markers and compaction leave holes; windows follow offsets, not counts
        ConnectHarness h = new ConnectHarness(4, NO_BYTE_CAP).records(0, 1, 3, 6, 7, 9, 13).start();
        h.drain(2);
        h.commit();
        assertEquals(objects(
            Map.entry(key(0, 0), lines(0, 1, 3)),
            Map.entry(key(0, 4), lines(6, 7)),
            Map.entry(key(0, 8), lines(9))), h.store.lines());
        assertEquals(12, h.committed(0), "window [12,16) holds offset 13 and is open");
        h.idle(1000);
        h.commit();
        assertEquals(lines(13), h.store.lines().get(key(0, 12)));
        assertEquals(12, h.committed(0));
        // a replay after a crash rewrites the same objects with the same lines
        Map<String, List<String>> before = h.store.lines();
        h.crash().drain(2).idle(1000);
        assertEquals(before, h.store.lines());
    }

    // -- rebalances and restarts ---------------------------------------------------------------

    @Test
    void revokedAndReassignedPartitionsResumeFromTheCommittedOffset() {
        ConnectHarness h = new ConnectHarness(4, NO_BYTE_CAP);
        for (long o = 0; o < 10; o++) {
            h.record(0, o, "{\"i\":" + o + "}").record(1, o, "{\"p1\":" + o + "}");
        }
        h.start();
        h.poll(11); // p0: 0..5, p1: 0..4
        h.rebalance();
        assertEquals(4, h.committed(0));
        assertEquals(4, h.committed(1));
        h.drain(5);
        h.idle(1000);
        h.commit();
        List<String> p1 = LongStream.range(0, 10).mapToObj(o -> "{\"p1\":" + o + "}").toList();
        assertEquals(objects(
            Map.entry(key(0, 0), lines(0, 1, 2, 3)),
            Map.entry(key(0, 4), lines(4, 5, 6, 7)),
            Map.entry(key(0, 8), lines(8, 9)),
            Map.entry(key(1, 0), p1.subList(0, 4)),
            Map.entry(key(1, 4), p1.subList(4, 8)),
            Map.entry(key(1, 8), p1.subList(8, 10))), h.store.lines());
        assertEquals(8, h.committed(0));
        assertEquals(8, h.committed(1));
    }

    @Test
    void aRebalanceWhileAWriteIsPendingLosesNothing() {
        ConnectHarness h = new ConnectHarness(4, NO_BYTE_CAP).records(range(0, 8)).start();
        h.poll(3);
        h.store.failNext(k -> k.equals(key(0, 0)), 2);
        // 3 completes window [0,4), whose write fails; Connect would retry the batch, but a
        // rebalance comes first, and the write in its preCommit fails as well
        assertThrows(RetriableException.class, () -> h.task.put(h.nextBatch(2)));
        h.rebalance();
        assertEquals(0, h.committed(0));
        assertTrue(h.store.objects.isEmpty());
        h.drain(3).idle(1000).commit();
        assertEquals(objects(
            Map.entry(key(0, 0), lines(0, 1, 2, 3)),
            Map.entry(key(0, 4), lines(4, 5, 6, 7))), h.store.lines());
        assertEquals(8, h.committed(0));
    }

    @Test
    void aNewTaskReplayingFromTheCommittedOffsetWritesIdenticalObjects() {
        ConnectHarness reference = new ConnectHarness(4, 40).records(range(0, 23)).start();
        reference.drain(3).idle(1000);

        ConnectHarness h = new ConnectHarness(4, 40).records(range(0, 23)).start();
        h.poll(6);
        h.commit(); // committed 4: window [4,8) is open
        h.poll(7); // objects up to offset 12 written past the commit, then the worker dies
        h.crash();
        assertEquals(4, h.committed(0));
        h.drain(5).idle(1000);
        assertEquals(reference.store.lines(), h.store.lines());
        // the objects written before the crash were rewritten with the very same bytes
        for (Map.Entry<String, String> put : h.store.puts) {
            String finalBody = new String(h.store.objects.get(put.getKey()), StandardCharsets.UTF_8);
            assertTrue(finalBody.startsWith(put.getValue()), put.getKey() + " changed on replay");
        }
    }

    // -- values that cannot land ---------------------------------------------------------------

    @Test
    void tombstonesNonJsonAndTrailingContentGoToTheDeadLetterTopic() {
        ConnectHarness h = new ConnectHarness(20, NO_BYTE_CAP);
        Object[] bad = {
            null, "not json {", "{\"a\":1} garbage", "{\"a\":1}\n{\"b\":2}", "{\"a\":1}{\"b\":2}",
            "[1, 2]", "\"text\"", "", "   ", 42, "{\"a\":", new byte[] {(byte) 0xff, (byte) 0xfe},
        };
        long offset = 0;
        h.record(0, offset++, "{\"good\":0}");
        for (Object value : bad) {
            h.record(0, offset++, value);
        }
        h.record(0, offset++, "{\n  \"good\": 1\n}");
        h.record(0, offset++, "{\"good\":2}  ");
        h.start().drain(4).idle(1000);
        assertEquals(bad.length, h.deadLetters.size());
        for (int i = 0; i < bad.length; i++) {
            SinkRecord dead = h.deadLetters.get(i).getKey();
            assertEquals(i + 1, dead.kafkaOffset());
            DataException error = assertInstanceOf(DataException.class, h.deadLetters.get(i).getValue());
            assertTrue(error.getMessage().startsWith("value is "), error.getMessage());
        }
        assertEquals(
            List.of("value is null (a tombstone): nothing to land",
                "value is not a single JSON object: content follows it"),
            List.of(h.deadLetters.get(0).getValue().getMessage(),
                h.deadLetters.get(2).getValue().getMessage()));
        assertEquals(objects(Map.entry(key(0, 0),
            List.of("{\"good\":0}", "{\"good\":1}", "{\"good\":2}  "))), h.store.lines());
    }

    @ParameterizedTest
    @ValueSource(strings = {"{\"a\":1} garbage", "{\"a\":1}\n{\"b\":2}", "{\"a\":1} {", "{\"a\":1}]"})
    void trailingContentIsRejected(String value) {
        DataException error = assertThrows(DataException.class,
            () -> JsonLinesS3SinkTask.jsonObjectLine(value));
        assertEquals("value is not a single JSON object: content follows it", error.getMessage());
    }

    @Test
    void withoutADeadLetterTopicABadValueStopsTheTask() {
        ConnectHarness h = new ConnectHarness(4, NO_BYTE_CAP).record(0, 0, "nope");
        h.task = new JsonLinesS3SinkTask(c -> h.store, () -> h.now);
        h.task.initialize(new org.apache.kafka.connect.sink.SinkTaskContext() {
            public Map<String, String> configs() { return h.props; }
            public void offset(Map<org.apache.kafka.common.TopicPartition, Long> o) {}
            public void offset(org.apache.kafka.common.TopicPartition tp, long o) {}
            public void timeout(long ms) {}
            public java.util.Set<org.apache.kafka.common.TopicPartition> assignment() { return h.partitions(); }
            public void pause(org.apache.kafka.common.TopicPartition... p) {}
            public void resume(org.apache.kafka.common.TopicPartition... p) {}
            public void requestCommit() {}
            public org.apache.kafka.common.metrics.PluginMetrics pluginMetrics() { return null; }
            public org.apache.kafka.connect.sink.ErrantRecordReporter errantRecordReporter() {
                return null;
            }
        });
        h.task.start(h.props);
        assertThrows(DataException.class, () -> h.task.put(h.log));
        assertTrue(h.store.objects.isEmpty());
    }

    // -- the byte cap ----------------------------------------------------------------------------

    @Test
    void aWindowHittingTheByteCapIsWrittenAsPartsNamedByTheirFirstOffset() {
        // lines are 7 or 8 bytes with the newline: at most 3 fit in 24 bytes
        ConnectHarness h = new ConnectHarness(8, 24).records(range(0, 16));
        h.record(0, 16, "{\"i\":\"" + "x".repeat(40) + "\"}"); // alone larger than the cap
        h.records(17, 18);
        h.start();
        h.poll(5);
        h.commit();
        assertEquals(0, h.committed(0), "window [0,8) is open: parts are re-cut from its start");
        h.drain(5).idle(1000).commit();
        assertEquals(objects(
            Map.entry(key(0, 0), lines(0, 1, 2)),
            Map.entry(key(0, 3), lines(3, 4, 5)),
            Map.entry(key(0, 6), lines(6, 7)),
            Map.entry(key(0, 8), lines(8, 9)),
            Map.entry(key(0, 10), lines(10, 11)),
            Map.entry(key(0, 12), lines(12, 13)),
            Map.entry(key(0, 14), lines(14, 15)),
            Map.entry(key(0, 16), List.of("{\"i\":\"" + "x".repeat(40) + "\"}")),
            Map.entry(key(0, 17), lines(17, 18))), h.store.lines());
        assertEquals(16, h.committed(0));
        for (String k : h.store.objects.keySet()) {
            assertEquals("8", h.store.metadata.get(k).get(JsonLinesS3SinkTask.META_WINDOW_RECORDS));
            assertEquals("24", h.store.metadata.get(k).get(JsonLinesS3SinkTask.META_PART_MAX_BYTES));
        }
    }

    @Test
    void aFailedPartWriteAtTheByteCapIsRetried() {
        ConnectHarness h = new ConnectHarness(8, 24).records(range(0, 8)).start();
        h.store.failNext(k -> k.equals(key(0, 0)), 2);
        h.drain(8);
        assertEquals(2, h.retries);
        assertEquals(objects(
            Map.entry(key(0, 0), lines(0, 1, 2)),
            Map.entry(key(0, 3), lines(3, 4, 5)),
            Map.entry(key(0, 6), lines(6, 7))), h.store.lines());
        h.commit();
        assertEquals(8, h.committed(0));
    }

    // -- changing the layout ---------------------------------------------------------------------

    @Test
    void changingTheWindowSizeOnAnExistingPrefixIsRefused() {
        ConnectHarness h = new ConnectHarness(4, NO_BYTE_CAP).records(range(0, 6)).start();
        h.drain(10).commit();
        h.props.put("flush.max.records", "6");
        h.records(6, 7);
        h.crash();
        ConnectException error = assertThrows(ConnectException.class, () -> h.poll(10));
        assertTrue(!(error instanceof RetriableException), "must stop the task, not retry");
        assertTrue(error.getMessage().contains("flush.max.records=4"), error.getMessage());
        assertTrue(error.getMessage().contains("flush.max.records=6"), error.getMessage());
        assertEquals(objects(Map.entry(key(0, 0), lines(0, 1, 2, 3))), h.store.lines());
        // the same layout is accepted again, and goes on where it was
        h.props.put("flush.max.records", "4");
        h.crash().drain(10).commit();
        assertEquals(objects(
            Map.entry(key(0, 0), lines(0, 1, 2, 3)),
            Map.entry(key(0, 4), lines(4, 5, 6, 7))), h.store.lines());
    }

    @Test
    void changingTheByteCapOnAnExistingPrefixIsRefused() {
        ConnectHarness h = new ConnectHarness(4, 100).records(range(0, 4)).start();
        h.drain(10);
        h.props.put("flush.max.bytes", "200");
        h.records(4);
        h.crash();
        ConnectException error = assertThrows(ConnectException.class, () -> h.poll(10));
        assertTrue(error.getMessage().contains("flush.max.bytes=100"), error.getMessage());
    }

    @Test
    void objectsWithoutLayoutMetadataAndOtherPartitionsAreNotInTheWay() throws Exception {
        ConnectHarness h = new ConnectHarness(4, NO_BYTE_CAP).records(range(0, 4));
        h.record(1, 0, "{\"p\":1}");
        h.store.put(key(0, 0), "{\"old\":0}\n".getBytes(StandardCharsets.UTF_8), Map.of());
        h.store.put("topics/t/partition=10/t+10+00000000000000000000.json", "{}\n".getBytes(StandardCharsets.UTF_8),
            Map.of(JsonLinesS3SinkTask.META_WINDOW_RECORDS, "99",
                JsonLinesS3SinkTask.META_PART_MAX_BYTES, "99"));
        h.start().drain(10).idle(1000);
        assertEquals(lines(0, 1, 2, 3), h.store.lines().get(key(0, 0)));
        assertEquals(List.of("{\"p\":1}"), h.store.lines().get(key(1, 0)));
    }

    @Test
    void aFailedLayoutCheckIsRetried() {
        ConnectHarness h = new ConnectHarness(4, NO_BYTE_CAP).records(range(0, 4)).start();
        h.store.failNext(k -> k.equals("topics/t/partition=0/"), 2);
        h.drain(10);
        assertEquals(2, h.retries);
        assertEquals(objects(Map.entry(key(0, 0), lines(0, 1, 2, 3))), h.store.lines());
    }

    // -- everything at once, many times ----------------------------------------------------------

    /** What the lake must hold for a log of valid records: the layout, computed independently. */
    static Map<String, List<String>> expectedObjects(List<SinkRecord> log, int n, int maxBytes) {
        Map<String, List<String>> result = new TreeMap<>();
        Map<Integer, List<SinkRecord>> byPartition = log.stream().collect(
            Collectors.groupingBy(SinkRecord::kafkaPartition, LinkedHashMap::new, Collectors.toList()));
        for (List<SinkRecord> records : byPartition.values()) {
            records.sort(Comparator.comparingLong(SinkRecord::kafkaOffset));
            long window = -1;
            String part = null;
            int bytes = 0;
            for (SinkRecord r : records) {
                String line = (String) r.value();
                long w = r.kafkaOffset() - r.kafkaOffset() % n;
                if (w != window) {
                    window = w;
                    part = key(r.kafkaPartition(), w);
                    bytes = 0;
                } else if (bytes > 0 && bytes + line.length() + 1 > maxBytes) {
                    part = key(r.kafkaPartition(), r.kafkaOffset());
                    bytes = 0;
                }
                result.computeIfAbsent(part, k -> new ArrayList<>()).add(line);
                bytes += line.length() + 1;
            }
        }
        return result;
    }

    @ParameterizedTest
    @ValueSource(longs = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
        21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40})
    void failuresRebalancesAndCrashesNeverLoseDuplicateOrOverlap(long seed) {
        Random random = new Random(seed);
        int n = 1 + random.nextInt(7);
        int maxBytes = 8 + random.nextInt(60);
        ConnectHarness h = new ConnectHarness(n, maxBytes);
        for (int p = 0; p < 2; p++) {
            long offset = random.nextInt(3);
            for (int i = 0; i < 40; i++) {
                h.record(p, offset, "{\"i\":\"" + "x".repeat(random.nextInt(12)) + p + ":" + offset + "\"}");
                offset += 1 + (random.nextInt(5) == 0 ? random.nextInt(4) : 0); // some gaps
            }
        }
        h.store.chaos(seed, 0.3);
        h.start();
        while (!h.nextBatch(1).isEmpty()) {
            switch (random.nextInt(12)) {
                case 0 -> h.commit();
                case 1 -> h.rebalance();
                case 2 -> h.crash();
                case 3 -> h.idle(random.nextInt(1500));
                case 4, 5 -> h.putOnce(1 + random.nextInt(8));
                default -> h.poll(1 + random.nextInt(8));
            }
        }
        h.idle(1000);
        for (int i = 0; i < 20 && h.store.lines().size() < expectedObjects(h.log, n, maxBytes).size(); i++) {
            h.idle(1000); // open parts whose write failed, again
        }
        h.commit();
        assertTrue(h.store.failed > 0, "the chaos store failed nothing");
        assertTrue(h.deadLetters.isEmpty());
        assertEquals(expectedObjects(h.log, n, maxBytes), h.store.lines());
        for (Map.Entry<String, String> put : h.store.puts) {
            String finalBody = new String(h.store.objects.get(put.getKey()), StandardCharsets.UTF_8);
            assertTrue(finalBody.startsWith(put.getValue()), put.getKey() + " written differently");
        }
    }
}
