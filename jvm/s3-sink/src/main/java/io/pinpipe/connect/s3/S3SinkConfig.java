package io.pinpipe.connect.s3;

import java.util.Map;
import org.apache.kafka.common.config.AbstractConfig;
import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.common.config.ConfigDef.Importance;
import org.apache.kafka.common.config.ConfigDef.Range;
import org.apache.kafka.common.config.ConfigDef.Type;
import org.apache.kafka.common.config.types.Password;

/** Settings of the sink. Target-specific values (endpoint, bucket, credentials) come from
 * connectors/s3-sink.json, filled in from the pipeline's configuration. */
public final class S3SinkConfig extends AbstractConfig {
    public static final ConfigDef DEF = new ConfigDef()
        .define("s3.bucket.name", Type.STRING, ConfigDef.NO_DEFAULT_VALUE, Importance.HIGH,
            "Bucket of the landing zone.")
        .define("s3.prefix", Type.STRING, "topics", Importance.MEDIUM,
            "Key prefix; objects go to <prefix>/<topic>/partition=<p>/.")
        .define("s3.region", Type.STRING, "us-east-1", Importance.MEDIUM, "AWS region.")
        .define("s3.endpoint", Type.STRING, "", Importance.MEDIUM,
            "Endpoint override (an emulator); empty means AWS itself.")
        .define("s3.path.style.access", Type.BOOLEAN, false, Importance.MEDIUM,
            "Path-style requests (needed by most emulators).")
        .define("aws.access.key.id", Type.STRING, "", Importance.MEDIUM,
            "Static access key; empty means the default AWS credential chain.")
        .define("aws.secret.access.key", Type.PASSWORD, "", Importance.MEDIUM, "Static secret key.")
        .define("s3.retry.max.attempts", Type.INT, 10, Range.atLeast(1), Importance.LOW,
            "Attempts per S3 request before the batch is handed back to Connect for redelivery.")
        .define("flush.max.records", Type.INT, 1000, Range.atLeast(1), Importance.HIGH,
            "Records per offset window: window k of a partition holds offsets [k*N, (k+1)*N)."
            + " Fixed for a landing prefix: the task refuses to run when objects already there"
            + " were cut with another value.")
        .define("flush.max.bytes", Type.INT, 16 * 1024 * 1024, Range.atLeast(1), Importance.MEDIUM,
            "Bytes per object: a window that would grow past this is written as parts, each named"
            + " by its own first offset (a single larger record makes a part of its own). Fixed"
            + " for a landing prefix, like flush.max.records.")
        .define("flush.interval.ms", Type.LONG, 60000L, Range.atLeast(100), Importance.HIGH,
            "Longest time a record waits before its (possibly partial) object is written.");

    public S3SinkConfig(Map<String, String> props) {
        super(DEF, props);
    }

    String bucket() { return getString("s3.bucket.name"); }
    String prefix() { return getString("s3.prefix"); }
    String region() { return getString("s3.region"); }
    String endpoint() { return getString("s3.endpoint"); }
    boolean pathStyle() { return getBoolean("s3.path.style.access"); }
    String accessKey() { return getString("aws.access.key.id"); }
    String secretKey() {
        Password secret = getPassword("aws.secret.access.key");
        return secret == null ? "" : secret.value();
    }
    int retryMaxAttempts() { return getInt("s3.retry.max.attempts"); }
    int windowSize() { return getInt("flush.max.records"); }
    int partMaxBytes() { return getInt("flush.max.bytes"); }
    long flushIntervalMs() { return getLong("flush.interval.ms"); }
}
