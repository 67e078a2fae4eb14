"""The landing zone: Kafka Connect's S3 sink, registered from connectors/s3-sink.json."""
