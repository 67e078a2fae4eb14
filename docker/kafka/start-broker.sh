#!/bin/sh
# Start the broker (KRaft combined mode). The first start formats the log directory, as the local
# stack does (pipeline/stack/stack.py); later starts keep the cluster id stored there.
set -eu
conf=/etc/kafka/server.properties
classpath='/opt/kafka/libs/*'
if [ ! -f /var/lib/kafka/data/meta.properties ]; then
  java -cp "$classpath" kafka.tools.StorageTool format \
    --cluster-id "${KAFKA_CLUSTER_ID:?set KAFKA_CLUSTER_ID (22 characters, base64 of a UUID)}" \
    --config "$conf" --ignore-formatted
fi
exec java -cp "$classpath" kafka.Kafka "$conf" \
  --override "advertised.listeners=PLAINTEXT://kafka:9092,HOST://127.0.0.1:${KAFKA_HOST_PORT:-9092}"
