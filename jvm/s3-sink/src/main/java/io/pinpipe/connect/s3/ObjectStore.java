package io.pinpipe.connect.s3;

import java.util.Map;
import java.util.Optional;

/**
 * The few object-store calls the sink makes: the seam between the task's bookkeeping and S3, so
 * tests can run the task against an in-memory store that fails on chosen writes.
 */
interface ObjectStore extends AutoCloseable {
    /** Writes (or overwrites) {@code key} with {@code body} and user metadata. */
    void put(String key, byte[] body, Map<String, String> metadata) throws StoreException;

    /** The lowest key under {@code prefix}, if any (S3 lists keys in ascending order). */
    Optional<String> firstKey(String prefix) throws StoreException;

    /** The user metadata of {@code key}. */
    Map<String, String> metadata(String key) throws StoreException;

    @Override
    void close();

    /** A store call failed; the task hands the batch back to Connect for redelivery. */
    final class StoreException extends Exception {
        private static final long serialVersionUID = 1L;

        StoreException(String message, Throwable cause) {
            super(message, cause);
        }
    }
}
