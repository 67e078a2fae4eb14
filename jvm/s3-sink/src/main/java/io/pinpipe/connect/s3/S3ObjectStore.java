package io.pinpipe.connect.s3;

import java.net.URI;
import java.util.Map;
import java.util.Optional;
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
import software.amazon.awssdk.services.s3.model.S3Object;

/** {@link ObjectStore} on S3 (or an S3 emulator), AWS SDK v2. */
final class S3ObjectStore implements ObjectStore {
    private final S3Client s3;
    private final String bucket;

    S3ObjectStore(S3SinkConfig config) {
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
        this.s3 = builder.build();
        this.bucket = config.bucket();
    }

    @Override
    public void put(String key, byte[] body, Map<String, String> metadata) throws StoreException {
        try {
            s3.putObject(
                PutObjectRequest.builder().bucket(bucket).key(key)
                    .contentType("application/x-ndjson").metadata(metadata).build(),
                RequestBody.fromBytes(body));
        } catch (SdkException e) {
            throw new StoreException("writing s3://" + bucket + "/" + key + " failed", e);
        }
    }

    @Override
    public Optional<String> firstKey(String prefix) throws StoreException {
        try {
            return s3.listObjectsV2(r -> r.bucket(bucket).prefix(prefix).maxKeys(1))
                .contents().stream().map(S3Object::key).findFirst();
        } catch (SdkException e) {
            throw new StoreException("listing s3://" + bucket + "/" + prefix + " failed", e);
        }
    }

    @Override
    public Map<String, String> metadata(String key) throws StoreException {
        try {
            return s3.headObject(r -> r.bucket(bucket).key(key)).metadata();
        } catch (SdkException e) {
            throw new StoreException("reading s3://" + bucket + "/" + key + " failed", e);
        }
    }

    @Override
    public void close() {
        s3.close();
    }
}
