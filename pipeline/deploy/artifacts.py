"""Artifacts of a stage, named by content so an unchanged input uploads nothing new.

- the S3 sink plugin: the jars of .cache/jvm/plugins/pinpipe-s3-sink/ (what the local Connect
  worker loads) zipped for MSK Connect; only our connector and its libraries, since MSK Connect
  brings the Connect runtime and the MSK IAM auth library itself;
- the pipeline wheel (`uv build`), which the Databricks jobs install and run;
- the MWAA bundle (the MWAA packaging target's dags/ and requirements.txt) and the startup
  script with the stage's settings;
- the API image (images/pipeline/Dockerfile, target api), tagged by a hash of its inputs and
  pushed to ECR.
"""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import subprocess
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from pipeline.config.settings import PROJECT_ROOT
from pipeline.deploy.errors import DeployError

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_s3 import S3Client

SHA_METADATA = "sha256"
PLUGIN_NAME = "pinpipe-s3-sink"
# a fixed timestamp makes the zip a function of the jars alone
_ZIP_EPOCH = (2020, 1, 1, 0, 0, 0)
IMAGE_INPUTS = (
    "images/pipeline/Dockerfile",
    "pyproject.toml",
    "uv.lock",
    "README.md",
    "docker/healthcheck.py",
    "pipeline",
    "connectors",
)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def plugin_zip(plugin_dir: Path) -> bytes:
    """The MSK Connect custom plugin: `pinpipe-s3-sink/<jar>` for every jar, deterministic."""
    jars = sorted(plugin_dir.glob("*.jar"))
    if not jars:
        raise DeployError(f"no connector jars in {plugin_dir}: run `make setup` first")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for jar in jars:
            info = zipfile.ZipInfo(f"{PLUGIN_NAME}/{jar.name}", date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            archive.writestr(info, jar.read_bytes(), zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def plugin_key(data: bytes) -> str:
    return f"connect/{PLUGIN_NAME}-{sha256(data)[:16]}.zip"


def build_wheel(out_dir: Path, project: Path = PROJECT_ROOT) -> Path:
    """`uv build --wheel` of the pipeline package (reproducible: hatchling fixes timestamps)."""
    uv = shutil.which("uv")
    if uv is None:
        raise DeployError("`uv` not found on PATH: it builds the pipeline wheel (pip install uv)")
    subprocess.run(
        [uv, "build", "--wheel", "--quiet", "--out-dir", str(out_dir), str(project)],
        check=True,
        cwd=project,
    )
    wheels = sorted(out_dir.glob("pinpipe-*.whl"))
    if not wheels:
        raise DeployError(f"uv build produced no wheel in {out_dir}")
    return wheels[-1]


def wheel_key(wheel: Path) -> str:
    # the file name must stay a valid wheel name for pip; the folder carries the content hash
    return f"wheels/{sha256(wheel.read_bytes())[:16]}/{wheel.name}"


def job_code(project: Path = PROJECT_ROOT) -> dict[str, bytes]:
    """The pipeline's Python files by path (`pipeline/...`): the code root of Databricks runs
    (the DAG runs `<code root>/pipeline/transform/job.py` with the wheel installed)."""
    return {
        path.relative_to(project).as_posix(): path.read_bytes()
        for path in sorted((project / "pipeline").rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def code_prefix(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name, data in sorted(files.items()):
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return f"code/{digest.hexdigest()[:16]}"


def upload(s3: S3Client, bucket: str, key: str, data: bytes) -> tuple[str, bool]:
    """Put `data` at `key` unless the current object already holds it: (version id, uploaded)."""
    digest = sha256(data)
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
        if head.get("Metadata", {}).get(SHA_METADATA) == digest:
            return head.get("VersionId", ""), False
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
            raise
    put = s3.put_object(Bucket=bucket, Key=key, Body=data, Metadata={SHA_METADATA: digest})
    return put.get("VersionId", ""), True


@dataclass
class MwaaUpload:
    requirements_version: str
    startup_version: str
    uploaded: list[str]
    deleted: list[str]


def mwaa_bundle_files(bundle: Path) -> dict[str, Path]:
    """Files of the MWAA bundle by their key under mwaa/: dags/... and requirements.txt."""
    dags, requirements = bundle / "dags", bundle / "requirements.txt"
    if not dags.is_dir() or not requirements.is_file():
        raise DeployError(
            f"MWAA bundle {bundle} needs dags/ and requirements.txt: build it with the MWAA "
            "packaging target first (or set PINPIPE_DEPLOY_MWAA_BUNDLE)"
        )
    files = {"requirements.txt": requirements}
    for path in sorted(dags.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            files[f"dags/{path.relative_to(dags).as_posix()}"] = path
    return files


def upload_mwaa(s3: S3Client, bucket: str, bundle: Path, startup_script: str) -> MwaaUpload:
    """Sync the bundle to s3://bucket/mwaa/ (stale DAG files removed) and the startup script."""
    uploaded: list[str] = []
    versions: dict[str, str] = {}
    for relative, path in mwaa_bundle_files(bundle).items():
        key = f"mwaa/{relative}"
        versions[key], changed = upload(s3, bucket, key, path.read_bytes())
        if changed:
            uploaded.append(key)
    key = "mwaa/startup.sh"
    versions[key], changed = upload(s3, bucket, key, startup_script.encode())
    if changed:
        uploaded.append(key)
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="mwaa/dags/").get("Contents", [])
    stale = [obj["Key"] for obj in listed if obj["Key"] not in versions]
    for key in stale:
        s3.delete_object(Bucket=bucket, Key=key)
    return MwaaUpload(
        versions["mwaa/requirements.txt"], versions["mwaa/startup.sh"], uploaded, stale
    )


def _inputs(project: Path) -> Iterable[Path]:
    for name in IMAGE_INPUTS:
        path = project / name
        if path.is_file():
            yield path
        elif path.is_dir():
            yield from (
                p for p in sorted(path.rglob("*")) if p.is_file() and "__pycache__" not in p.parts
            )


def image_tag(project: Path = PROJECT_ROOT) -> str:
    """A tag that changes exactly when something the API image is built from changes."""
    digest = hashlib.sha256()
    for path in _inputs(project):
        digest.update(path.relative_to(project).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return f"src-{digest.hexdigest()[:16]}"


Runner = Callable[[Sequence[str], bytes | None], int]


def run_command(command: Sequence[str], stdin: bytes | None) -> int:
    return subprocess.run(list(command), input=stdin, check=False, cwd=PROJECT_ROOT).returncode


def docker_available(runner: Runner = run_command) -> bool:
    docker = shutil.which("docker")
    return (
        docker is not None and runner([docker, "info", "--format", "{{.ServerVersion}}"], None) == 0
    )


def image_exists(ecr: ECRClient, repository: str, tag: str) -> bool:
    try:
        ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ImageNotFoundException":
            return False
        raise
    return True


def push_commands(image_uri: str) -> list[list[str]]:
    """docker build (the docker target's API image, for the x86_64 instance) and push, run
    from the project root."""
    return [
        [
            "docker",
            "build",
            "--platform",
            "linux/amd64",
            "--file",
            "images/pipeline/Dockerfile",
            "--target",
            "api",
            "--tag",
            image_uri,
            ".",
        ],
        ["docker", "push", image_uri],
    ]


def push_image(
    ecr: ECRClient,
    repository: str,
    image_uri: str,
    runner: Runner = run_command,
    has_docker: bool | None = None,
) -> str:
    """Build and push the API image unless ECR has this tag; says what it did."""
    tag = image_uri.rsplit(":", 1)[1]
    if image_exists(ecr, repository, tag):
        return f"image {image_uri} already in ECR"
    if not (docker_available(runner) if has_docker is None else has_docker):
        return (
            f"no Docker engine here: image {image_uri} NOT pushed; the API instance waits for "
            "it. Run `make deploy` where Docker runs to push it."
        )
    auth = ecr.get_authorization_token()["authorizationData"][0]
    registry = auth["proxyEndpoint"].removeprefix("https://")
    user, password = base64.b64decode(auth["authorizationToken"]).decode().split(":", 1)
    login = ["docker", "login", "--username", user, "--password-stdin", registry]
    if runner(login, password.encode()) != 0:
        raise DeployError(f"docker login to {registry} failed")
    for command in push_commands(image_uri):
        if runner(command, None) != 0:
            raise DeployError(f"`{' '.join(command)}` failed")
    return f"image {image_uri} pushed"
