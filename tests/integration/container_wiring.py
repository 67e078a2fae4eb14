"""Run part of the compose stack for real without a Docker engine (driver of
test_container_wiring.py; run it inside `unshare --net --mount --pid --fork --mount-proc`).

Each service runs its compose command with its compose environment plus its image's ENV, in the
file layout its image would have: the files the Dockerfile COPYs are bind-mounted at their image
paths (/etc/kafka/..., /opt/kafka/libs, /opt/pinpipe/healthcheck.py; /opt/venv and /app for the
Python images), named volumes are folders, and the service names resolve to loopback in a private
network namespace. Readiness is the service's own healthcheck command; one-shots must exit 0.
Prints one JSON report on stdout.

    python -m tests.integration.container_wiring CONFIG.json WORKDIR
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3

from pipeline.config.settings import stream_names, topic_names
from pipeline.landing import topic_prefix
from tests.support.dockerfiles import ROOT, Dockerfile, parse_dockerfile

STARTED: list[subprocess.Popen[bytes]] = []


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True)


def prepare_namespace(work: Path, hostnames: list[str]) -> None:
    """Private mounts and loopback; /etc and /var/lib writable through overlays, /opt empty."""
    sh("mount", "--make-rprivate", "/")
    work.mkdir(parents=True, exist_ok=True)
    sh("mount", "-t", "tmpfs", "tmpfs", str(work))
    for target in ("/etc", "/var/lib"):
        upper, scratch = work / f"{target[1:]}-upper", work / f"{target[1:]}-work"
        upper.mkdir(parents=True)
        scratch.mkdir(parents=True)
        options = f"lowerdir={target},upperdir={upper},workdir={scratch}"
        sh("mount", "-t", "overlay", "overlay", "-o", options, target)
    sh("mount", "-t", "tmpfs", "tmpfs", "/opt")
    sh("ip", "link", "set", "lo", "up")
    with open("/etc/hosts", "a") as hosts:
        hosts.write(f"127.0.0.1 {' '.join(hostnames)}\n")


def bind(source: Path, target: Path) -> None:
    if source.is_dir():
        target.mkdir(parents=True, exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch()
    sh("mount", "--bind", str(source), str(target))


def image_of(service: dict[str, Any]) -> tuple[Dockerfile, str | None]:
    build = service["build"]
    return parse_dockerfile(Path(build["context"]) / build["dockerfile"]), build.get("target")


def built_on_this_host(path: str) -> Path:
    """What a build stage resolves, as `make setup` resolved it here from the same manifests:
    the venv (uv.lock), the jars (jvm/pom.xml, /jars/<component>), the Node tools; else the
    package's code (/app)."""
    if path == "/opt/venv":
        return ROOT / ".venv"
    if path.startswith("/jars/"):
        return ROOT / ".cache/jvm" / path.removeprefix("/jars/")
    if path.startswith("/src/node/"):
        return ROOT / ".cache/node" / path.removeprefix("/src/node/")
    return ROOT


def lay_out_image(service: dict[str, Any], done: set[str]) -> dict[str, str]:
    """Bind what the image COPYs at its image paths; return the image's ENV."""
    dockerfile, target = image_of(service)
    env: dict[str, str] = {}
    for stage in reversed(dockerfile.chain(dockerfile.stage(target))):
        for keyword, args in stage.instructions:
            if keyword == "COPY":
                words = args.split()
                if words[0].startswith("--from="):
                    source, destination = built_on_this_host(words[1]), words[2]
                else:
                    source, destination = ROOT / words[0], words[1]
                if destination not in done:
                    bind(source, Path(destination))
                    done.add(destination)
            elif keyword == "RUN" and "mkdir -p" in args:
                for word in args.split("mkdir -p", 1)[1].split("&&")[0].split():
                    if word.startswith(("/var/lib/", "/opt/", "/app/")):  # writable here
                        Path(word).mkdir(parents=True, exist_ok=True)
            elif keyword == "ENV":
                for pair in shlex.split(args):
                    key, _, value = pair.partition("=")
                    env[key] = value.replace("$PATH", os.environ["PATH"])
    if Path("/app/.env").exists() and "/app/.env" not in done:
        bind(Path("/dev/null"), Path("/app/.env"))  # .dockerignore keeps .env out of images
        done.add("/app/.env")
    return env


def command_of(service: dict[str, Any]) -> list[str]:
    if service.get("command"):
        command: list[str] = service["command"]
        return command
    dockerfile, target = image_of(service)
    cmd = dockerfile.last(dockerfile.stage(target), "CMD")
    assert cmd is not None
    argv: list[str] = json.loads(cmd)
    return argv


def healthcheck_of(service: dict[str, Any]) -> list[str]:
    test = (service.get("healthcheck") or {}).get("test")
    if not test:
        dockerfile, target = image_of(service)
        args = dockerfile.last(dockerfile.stage(target), "HEALTHCHECK")
        assert args is not None
        test = ["CMD", *json.loads(args.partition("CMD ")[2])]
    assert test[0] == "CMD", test
    return list(test[1:])


def run_services(config: dict[str, Any], names: list[str], logs: Path) -> dict[str, Any]:
    services = config["services"]
    volumes = logs.parent / "volumes"
    report: dict[str, Any] = {"ready_s": {}, "exit": {}, "seconds": {}}
    done: set[str] = set()
    processes: dict[str, subprocess.Popen[bytes]] = {}
    environments: dict[str, dict[str, str]] = {}
    for name in names:
        service = services[name]
        image_env = lay_out_image(service, done)
        for volume in service.get("volumes", []):
            if volume["target"] in done:
                continue
            if volume["type"] == "volume":
                source = volumes / volume["source"]
                source.mkdir(parents=True, exist_ok=True)
            else:  # a bind mount of the repository's own files
                source = Path(volume["source"])
            bind(source, Path(volume["target"]))
            done.add(volume["target"])
        env = {"PATH": os.environ["PATH"], "HOME": "/tmp", "LANG": "C.UTF-8", "COLUMNS": "200"}
        env |= image_env | service.get("environment", {})
        environments[name] = env
        for dependency, how in service.get("depends_on", {}).items():
            if dependency in names:
                wanted = how["condition"]
                finished = report["exit"].get(dependency) == 0
                assert wanted != "service_completed_successfully" or finished, (name, dependency)
        started = time.monotonic()
        log = (logs / f"{name}.log").open("wb")
        process = subprocess.Popen(
            command_of(service),
            env=env,
            cwd="/app" if Path("/app").exists() else "/",
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        STARTED.append(process)
        processes[name] = process
        if service.get("restart", "no") == "no":
            report["exit"][name] = process.wait(timeout=180)
            report["seconds"][name] = round(time.monotonic() - started, 1)
            if report["exit"][name] != 0:
                raise RuntimeError(f"one-shot {name} exited {report['exit'][name]}")
            continue
        probe = healthcheck_of(service)
        while subprocess.run(probe, env=env, capture_output=True, check=False).returncode != 0:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited {process.returncode} before it was healthy")
            if time.monotonic() - started > 180:
                raise RuntimeError(f"{name} not healthy after 180 s: {probe}")
            time.sleep(1)
        report["ready_s"][name] = round(time.monotonic() - started, 1)
    report["processes"] = processes
    report["environments"] = environments
    return report


def count_landed(config: dict[str, Any]) -> tuple[dict[str, int], dict[str, int]]:
    env = config["services"]["provision"]["environment"]
    kwargs = {
        "region_name": env["AWS_REGION"],
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
    }
    prefix, bucket = env["PINPIPE_TOPIC_PREFIX"], env["PINPIPE_LAKE_BUCKET"]
    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL_S3"], **kwargs)
    landed = {}
    for table in ("pin", "geo", "user"):
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=topic_prefix(topic_names(prefix)[table]))
        landed[table] = len(listed.get("Contents", []))
    kinesis = boto3.client("kinesis", endpoint_url=env["AWS_ENDPOINT_URL_KINESIS"], **kwargs)
    streamed = {}
    for table in ("pin", "geo", "user"):
        stream = stream_names(prefix)[table]
        total = 0
        for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
            iterator = kinesis.get_shard_iterator(
                StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            total += len(kinesis.get_records(ShardIterator=iterator, Limit=1000)["Records"])
        streamed[table] = total
    return landed, streamed


def main(config_path: str, work: str) -> None:
    config: dict[str, Any] = json.loads(Path(config_path).read_text())
    logs = Path(work) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    prepare_namespace(Path(work) / "ns", ["kafka", "connect", "s3", "kinesis", "api"])
    order = ["s3", "kinesis", "kafka", "connect", "provision", "register-connector", "seed", "api"]
    emulators = ["emulator-batch", "emulator-stream"]
    report = run_services(config, [*order, *emulators], logs)
    processes, environments = report.pop("processes"), report.pop("environments")
    # one-shots again: what a second `up` does
    for name in ("provision", "seed"):
        started = time.monotonic()
        rerun = subprocess.run(
            command_of(config["services"][name]),
            env=environments[name],
            cwd="/app",
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        report["rerun"] = report.get("rerun", {}) | {
            name: {
                "exit": rerun.returncode,
                "seconds": round(time.monotonic() - started, 1),
                "output": rerun.stdout[-300:],
            }
        }
    time.sleep(float(os.environ.get("WIRING_POST_SECONDS", "12")))
    report["emulator_exit"] = {}
    for name in emulators:
        stop = signal.Signals[config["services"][name].get("stop_signal", "SIGTERM")]
        processes[name].send_signal(stop)
        report["emulator_exit"][name] = processes[name].wait(timeout=30)
    time.sleep(8)  # one more flush interval of the S3 sink
    report["landed"], report["streamed"] = count_landed(config)
    print(json.dumps(report))


if __name__ == "__main__":
    try:
        main(sys.argv[1], sys.argv[2])
    finally:
        for process in STARTED:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in STARTED:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
