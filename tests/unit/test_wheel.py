"""The wheel a Databricks cluster installs: it requires only what the jobs import there.

Spark and Delta come from the Databricks Runtime (deploy/databricks/jobs.yaml), so the wheel must
not require them, nor the servers, the local stack, Airflow or test tools (extras and dependency
groups hold those). The tests build the wheel with `uv build`, read its requirements, and then
import the cluster's code in a Python that refuses every distribution the cluster would not have.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterable
from email.parser import Parser
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from pipeline.deploy.databricks import TESTED_RUNTIMES

ROOT = Path(__file__).resolve().parents[2]
# What the Databricks Runtime provides itself: the cluster's wheel must leave these to it.
RUNTIME_PROVIDED = ("pyspark", "delta-spark")
# Never on a cluster: servers, the local stack, Airflow, the emulator's drivers, test tools.
FORBIDDEN = (
    *RUNTIME_PROVIDED,
    "moto",
    "supervisor",
    "gunicorn",
    "flask-openapi3",
    "apache-airflow",
    "confluent-kafka",
    "sqlalchemy",
    "psutil",
    "pytest",
)
# What runs on the cluster: the wheel task's entry point and the DAG's Python files.
CLUSTER_MODULES = (
    "pipeline.cluster",
    "pipeline.transform.job",
    "pipeline.stream.job",
    "pipeline.transform.quality",
    "pipeline.report.cli",
    "pipeline.report.build",
)
# Required but imported only when called, so not seen at import time.
IMPORTED_WHEN_CALLED = {
    "pyarrow": "deltalake's to_pyarrow_table/to_pyarrow_dataset (pipeline.report.lake)",
}
# What the API image runs: the whole `pinpipe` CLI (api, seed, emulate, provision, connectors).
API_IMAGE_EXTRAS = ("api", "source", "stack")
API_IMAGE_MODULES = ("pipeline.cli", "pipeline.ingest.app", "pipeline.ingest.server")


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", Requirement(requirement).name).lower()


@pytest.fixture(scope="module")
def wheel_metadata(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """The built wheel's METADATA headers and entry points (`uv build`, as a release would)."""
    uv = shutil.which("uv")
    assert uv, "uv is needed to build the wheel (make setup installs it)"
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [uv, "build", "--wheel", "--out-dir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = out.glob("pinpipe-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        info = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        message = Parser().parsestr(archive.read(info).decode())
        entry_points = archive.read(info.replace("METADATA", "entry_points.txt")).decode()
    return {
        "requires": message.get_all("Requires-Dist") or [],
        "extras": message.get_all("Provides-Extra") or [],
        "entry_points": entry_points.splitlines(),
    }


def base_requirements(requires: Iterable[str]) -> list[str]:
    """The requirements pip installs for the wheel without extras."""
    return [r for r in requires if Requirement(r).marker is None]


def extra_requirements(requires: Iterable[str], extra: str) -> list[str]:
    return [
        r
        for r in requires
        if (marker := Requirement(r).marker) is not None and marker.evaluate({"extra": extra})
    ]


def installed_closure(requirements: Iterable[str]) -> set[str]:
    """The distributions these requirements pull in, read from this venv's metadata."""
    seen: set[str] = set()
    pending = [Requirement(r) for r in requirements]
    while pending:
        requirement = pending.pop()
        name = _name(str(requirement))
        if name in seen:
            continue
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue  # a platform-specific dependency this machine does not install
        seen.add(name)
        for child in dist.requires or []:
            child_req = Requirement(child)
            wanted = not child_req.marker or any(
                child_req.marker.evaluate({"extra": extra}) for extra in ("", *requirement.extras)
            )
            if wanted:
                pending.append(child_req)
    return seen


# Runs in a fresh interpreter: refuses to import any module whose distribution is not allowed,
# imports the given modules, and prints the distributions that were loaded.
IMPORT_CHECK = """
import importlib, importlib.abc, importlib.metadata, json, re, sys
allowed, modules = set(json.loads(sys.argv[1])), json.loads(sys.argv[2])
owners = importlib.metadata.packages_distributions()
def norm(name): return re.sub(r"[-_.]+", "-", name).lower()
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        dists = {norm(d) for d in owners.get(name.split(".")[0], [])}
        if dists and not dists & allowed and "pinpipe" not in dists:
            raise ImportError(f"{name} (from {sorted(dists)}) is not installed on this target")
        return None
sys.meta_path.insert(0, Refuse())
for module in modules:
    importlib.import_module(module)
loaded = {norm(d) for m in list(sys.modules) for d in owners.get(m.split(".")[0], [])}
print(json.dumps(sorted(loaded)))
"""


def import_with_only(allowed: set[str], modules: Iterable[str]) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_CHECK, json.dumps(sorted(allowed)), json.dumps([*modules])],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def test_the_wheel_requires_no_spark_server_airflow_or_test_tool(
    wheel_metadata: dict[str, list[str]],
) -> None:
    required = {_name(r) for r in base_requirements(wheel_metadata["requires"])}
    assert required, "the wheel declares no requirements at all"
    # the closure too: a small direct dependency must not drag a server in
    pulled_in = installed_closure(base_requirements(wheel_metadata["requires"]))
    for name in FORBIDDEN:
        assert name not in required, f"the wheel requires {name}"
        assert name not in pulled_in, f"the wheel's requirements pull in {name}"
    assert not any(name.startswith("apache-airflow") for name in pulled_in)
    # the local stack still gets Spark: as the `spark` extra, pinned to the runtime's version
    spark = {_name(r): r for r in extra_requirements(wheel_metadata["requires"], "spark")}
    assert set(spark) == set(RUNTIME_PROVIDED)
    assert set(wheel_metadata["extras"]) >= {"spark", *API_IMAGE_EXTRAS}


def test_the_cluster_entry_point_is_in_the_wheel(wheel_metadata: dict[str, list[str]]) -> None:
    assert "pinpipe-cluster = pipeline.cluster:app" in wheel_metadata["entry_points"]
    jobs = (ROOT / "deploy" / "databricks" / "jobs.yaml").read_text()
    assert jobs.count("entry_point: pinpipe-cluster") == 2, "both jobs use the lean entry point"


def test_the_cluster_code_imports_only_the_wheel_and_the_runtime(
    wheel_metadata: dict[str, list[str]],
) -> None:
    """Every module the cluster runs imports with just the wheel's requirements and the runtime's
    Spark and Delta, and every requirement is used there (nothing the cluster would not run)."""
    base = base_requirements(wheel_metadata["requires"])
    allowed = installed_closure([*base, *RUNTIME_PROVIDED])
    loaded = import_with_only(allowed, CLUSTER_MODULES)
    unused = {_name(r) for r in base} - loaded - set(IMPORTED_WHEN_CALLED)
    assert not unused, f"the wheel requires {sorted(unused)}, which the cluster code never imports"


def test_the_api_image_extras_run_the_cli_without_spark(
    wheel_metadata: dict[str, list[str]],
) -> None:
    requires = wheel_metadata["requires"]
    chosen = base_requirements(requires) + [
        r for extra in API_IMAGE_EXTRAS for r in extra_requirements(requires, extra)
    ]
    allowed = installed_closure(chosen)
    assert "pyspark" not in allowed and "delta-spark" not in allowed
    import_with_only(allowed, API_IMAGE_MODULES)
    # the API image installs exactly these (tests/unit/test_dockerfiles.py checks each image)
    dockerfiles = "".join(path.read_text() for path in (ROOT / "images").rglob("Dockerfile"))
    assert " ".join(f"--extra {extra}" for extra in API_IMAGE_EXTRAS) in dockerfiles


def test_the_jobs_runtime_has_the_spark_the_tests_run_on() -> None:
    """The Databricks Runtime the jobs declare ships the Spark the `spark` extra pins."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pinned = {
        _name(r): str(Requirement(r).specifier)
        for r in pyproject["project"]["optional-dependencies"]["spark"]
    }
    for runtime, spark_version in TESTED_RUNTIMES.items():
        assert pinned["pyspark"] == f"=={spark_version}", runtime
        assert spark_version.startswith("4."), f"{runtime}: the jobs need Spark 4"
    from pipeline.deploy.stage import StageConfig

    default_runtime = StageConfig.model_fields["databricks_spark_version"].default
    assert default_runtime in TESTED_RUNTIMES
