package io.pinpipe.connect.s3;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import java.util.TreeMap;
import java.util.function.Predicate;

/** An in-memory bucket that fails the calls it is told to fail. */
final class FakeStore implements ObjectStore {
    final TreeMap<String, byte[]> objects = new TreeMap<>();
    final Map<String, Map<String, String>> metadata = new HashMap<>();
    /** Every successful put, in order: (key, body). */
    final List<Map.Entry<String, String>> puts = new ArrayList<>();
    private final List<Failure> failures = new ArrayList<>();
    private Random chaos;
    private double chaosRate;
    int failed;

    private static final class Failure {
        final Predicate<String> keys;
        int remaining;

        Failure(Predicate<String> keys, int times) {
            this.keys = keys;
            this.remaining = times;
        }
    }

    /** The next {@code times} calls on a key matching {@code keys} fail. */
    FakeStore failNext(Predicate<String> keys, int times) {
        failures.add(new Failure(keys, times));
        return this;
    }

    /** Every call fails with probability {@code rate}, from a seeded generator. */
    FakeStore chaos(long seed, double rate) {
        chaos = new Random(seed);
        chaosRate = rate;
        return this;
    }

    private void maybeFail(String key) throws StoreException {
        for (Failure failure : failures) {
            if (failure.remaining > 0 && failure.keys.test(key)) {
                failure.remaining--;
                failed++;
                throw new StoreException("injected failure on " + key, null);
            }
        }
        if (chaos != null && chaos.nextDouble() < chaosRate) {
            failed++;
            throw new StoreException("injected random failure on " + key, null);
        }
    }

    @Override
    public void put(String key, byte[] body, Map<String, String> meta) throws StoreException {
        maybeFail(key);
        objects.put(key, Arrays.copyOf(body, body.length));
        metadata.put(key, Map.copyOf(meta));
        puts.add(Map.entry(key, new String(body, StandardCharsets.UTF_8)));
    }

    @Override
    public Optional<String> firstKey(String prefix) throws StoreException {
        maybeFail(prefix);
        String key = objects.ceilingKey(prefix);
        return key != null && key.startsWith(prefix) ? Optional.of(key) : Optional.empty();
    }

    @Override
    public Map<String, String> metadata(String key) throws StoreException {
        maybeFail(key);
        return metadata.getOrDefault(key, Map.of());
    }

    @Override
    public void close() {}

    /** Every object as its lines, by key. */
    Map<String, List<String>> lines() {
        Map<String, List<String>> result = new TreeMap<>();
        objects.forEach((key, body) -> {
            String text = new String(body, StandardCharsets.UTF_8);
            if (!text.endsWith("\n")) {
                throw new AssertionError(key + " does not end with a newline");
            }
            result.put(key, List.of(text.substring(0, text.length() - 1).split("\n", -1)));
        });
        return result;
    }
}
