"""The local stack's S3 and Kinesis servers: S3Proxy and kinesalite, both persisted on disk.

Their data lives in the run folder's data dir (`.run/data/s3`, `.run/data/kinesis`), so `make
down` + `make up` keeps the lake, Delta tables, stream checkpoints and unconsumed Kinesis
records, as Kafka keeps its log; only `make clean` deletes them. The compose stack runs the same
two servers from the same files (docker/s3proxy, node/).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import boto3
from botocore.config import Config

from pipeline.config import Settings
from pipeline.config.settings import PROJECT_ROOT

S3PROXY_MAIN = "org.gaul.s3proxy.Main"
LOGBACK = PROJECT_ROOT / "docker" / "s3proxy" / "logback.xml"
# boto3 >= 1.36 and AWS SDK v2 >= 2.30 send CRC32 checksums by default; these variables make them
# send one only where S3 requires it, which every S3-compatible server accepts.
CHECKSUM_ENVIRONMENT = {
    "AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
    "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
}


def s3_data_dir(settings: Settings) -> Path:
    return settings.data_dir / "s3"


def kinesis_data_dir(settings: Settings) -> Path:
    return settings.data_dir / "kinesis"


def s3proxy_properties(host: str, port: int, basedir: Path | str) -> str:
    """S3Proxy's configuration: the S3 API on `host:port` over the folder `basedir`.

    No authorization: it listens on loopback (or a private compose network) and accepts any
    signature, like moto server did before it. jclouds insists on an identity and a credential even
    for a folder; these placeholders are not AWS credentials and reach no service.
    """
    values = {
        "s3proxy.endpoint": f"http://{host}:{port}",
        "s3proxy.authorization": "none",
        # x-amz-checksum-* and similar headers of newer SDKs: accepted instead of 501
        "s3proxy.ignore-unknown-headers": "true",
        # objects are files, S3A's directory markers `dir/` folders; S3Proxy >= 4 lists them
        # as S3 does, which S3A needs to see a folder Spark has just created (checkpoints)
        "jclouds.provider": "filesystem-nio2",
        "jclouds.filesystem.basedir": str(basedir),
        "jclouds.identity": "local",
        "jclouds.credential": "local",
    }
    return "".join(f"{key}={value}\n" for key, value in values.items())


def s3proxy_classpath(settings: Settings) -> str:
    return str(settings.jvm_dir / "s3proxy" / "*")


# kinesis-mock's state file, the Kinesis server's before kinesalite
KINESIS_MOCK_STATE_FILE = "kinesis-data.json"


def kinesis_mock_state_left(data_dir: Path) -> str | None:
    """What to tell the user when `data_dir` holds kinesis-mock's state and no LevelDB yet:
    kinesalite starts with no streams there (the records are not carried over)."""
    state = data_dir / KINESIS_MOCK_STATE_FILE
    if not state.is_file() or (data_dir / "CURRENT").is_file():
        return None
    return (
        f"{state} is the state of kinesis-mock, the Kinesis server before kinesalite; kinesalite "
        "does not read it, so the streams start empty (its records are not carried over)"
    )


def kinesis_server_script(settings: Settings) -> Path:
    """kinesalite's launcher (node/kinesis-server.js), installed by `make setup` beside it."""
    return settings.cache_dir / "node" / "kinesis-server.js"


def node_binary() -> str | None:
    return shutil.which("node")


def kinesis_environment(settings: Settings, data_dir: Path | str) -> dict[str, str]:
    """kinesis-server.js's configuration: kinesalite on loopback, its streams in LevelDB.

    kinesalite writes each batch to LevelDB's log before it answers, so a stop or a SIGKILL
    loses no acknowledged record; `up` reopens the same folder.
    """
    return {
        "KINESIS_HOST": "127.0.0.1",
        "KINESIS_PORT": str(settings.kinesis_port),
        "KINESIS_DATA_DIR": str(data_dir),
    }


def write_s3proxy_config(settings: Settings) -> Path:
    """Render S3Proxy's properties into `<run_dir>/conf` and create its data folder."""
    data = s3_data_dir(settings)
    data.mkdir(parents=True, exist_ok=True)
    conf_dir = settings.run_dir / "conf"
    conf_dir.mkdir(parents=True, exist_ok=True)
    path = conf_dir / "s3proxy.properties"
    path.write_text(s3proxy_properties("127.0.0.1", settings.s3_port, data))
    return path


def s3_ready(settings: Settings) -> bool:
    """ListBuckets answers: S3Proxy has opened its folder and serves the S3 API."""
    endpoint = settings.endpoint_url("s3")
    if not endpoint:
        return False
    s3 = boto3.client("s3", config=_probe_config(), **settings.boto3_kwargs("s3"))
    try:
        s3.list_buckets()
    except Exception:  # connection refused or 5xx while the JVM starts
        return False
    return True


def kinesis_ready(settings: Settings) -> bool:
    """ListStreams answers: kinesalite has opened its LevelDB folder and serves requests."""
    if not settings.endpoint_url("kinesis"):
        return False
    kinesis = boto3.client("kinesis", config=_probe_config(), **settings.boto3_kwargs("kinesis"))
    try:
        kinesis.list_streams()
    except Exception:  # connection refused while node starts
        return False
    return True


def _probe_config() -> Config:
    return Config(connect_timeout=2, read_timeout=3, retries={"max_attempts": 1})
