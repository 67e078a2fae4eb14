package io.pinpipe.connect.s3;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.connect.connector.Task;
import org.apache.kafka.connect.sink.SinkConnector;

/** Lands Kafka records in S3 as JSON lines, replay-safe. */
public final class JsonLinesS3SinkConnector extends SinkConnector {
    static final String VERSION = "1.0.0";
    private Map<String, String> props;

    @Override
    public void start(Map<String, String> props) {
        new S3SinkConfig(props); // fail fast on a bad config
        this.props = props;
    }

    @Override
    public Class<? extends Task> taskClass() {
        return JsonLinesS3SinkTask.class;
    }

    @Override
    public List<Map<String, String>> taskConfigs(int maxTasks) {
        List<Map<String, String>> configs = new ArrayList<>();
        for (int i = 0; i < maxTasks; i++) {
            configs.add(props);
        }
        return configs;
    }

    @Override
    public void stop() {}

    @Override
    public ConfigDef config() {
        return S3SinkConfig.DEF;
    }

    @Override
    public String version() {
        return VERSION;
    }
}
