"""Stream layer: the three Kinesis streams → Structured Streaming → Delta (data contract §5).

`kinesis_source` provides `format("kinesis")` where Spark has none (everywhere but Databricks);
`job` is the streaming job itself; `cli` adds `pinpipe stream`; `component` puts the job in the
local stack.
"""
