"""How `down` orders and configures the stop of each component (the real stop is tested in
tests/integration/test_stack_shutdown.py)."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import LocalSettings
from pipeline.stack.stack import stop_waves
from pipeline.stack.supervisor import Supervisor
from pipeline.workload import (
    PRIORITY_BROKER,
    PRIORITY_CONNECT,
    PRIORITY_PRODUCER,
    PRIORITY_STORAGE,
    Component,
)


def _component(name: str, **stop: object) -> Component:
    return Component(
        name=name,
        command=["true"],
        ports=[],
        url="",
        ready=lambda _: True,
        **stop,  # type: ignore[arg-type]
    )


def test_stop_waves_go_from_clients_to_storage_by_priority() -> None:
    priorities = {
        "s3": 100, "kinesis": 100, "kafka": 200, "connect": 300, "api": 400,
        "spark-stream": 400, "emulator-batch": 999, "airflow": 999,
    }  # fmt: skip
    assert stop_waves(priorities, list(priorities)) == [
        ["emulator-batch", "airflow"],
        ["api", "spark-stream"],
        ["connect"],
        ["kafka"],
        ["s3", "kinesis"],
    ]
    # a program supervisord runs that the configuration no longer lists stops first, alone
    assert stop_waves({"kafka": 200, "api": 999}, ["api", "kafka", "old-feed"]) == [
        ["old-feed"],
        ["api"],
        ["kafka"],
    ]


def test_a_configuration_without_priorities_stops_in_reverse_start_order(tmp_path: Path) -> None:
    """A stack started by a version before stop waves still stops one program at a time."""
    supervisor = Supervisor(LocalSettings(run_dir=tmp_path))
    supervisor.conf_path.parent.mkdir(parents=True)
    supervisor.conf_path.write_text(
        "[supervisord]\n\n[program:s3]\ncommand=a\n\n[program:kafka]\ncommand=b\n\n"
        "[program:api]\ncommand=c\n"
    )
    waves = stop_waves(supervisor.priorities(), ["s3", "kafka", "api"])
    assert waves == [["api"], ["kafka"], ["s3"]]


def test_the_real_components_stop_producers_first() -> None:
    """The priorities the stack's own components carry give the order issue #14 asks for."""
    from pipeline.ingest.component import api_components
    from pipeline.stream.component import stream_components

    settings = LocalSettings(stream_enabled=True)
    rank = {c.name: c.priority for c in [*api_components(settings), *stream_components(settings)]}
    assert rank["api"] == rank["spark-stream"] == PRIORITY_PRODUCER
    assert Component.priority > PRIORITY_PRODUCER > PRIORITY_CONNECT  # feeds, Airflow: default
    assert PRIORITY_CONNECT > PRIORITY_BROKER > PRIORITY_STORAGE
    # the stream job's JVM ignores SIGINT: it must outlive the job's own stop of its queries
    assert stream_components(settings)[0].stop_signal == "INT"


def test_each_program_gets_its_stop_signal_and_timeout_in_start_order(tmp_path: Path) -> None:
    supervisor = Supervisor(LocalSettings(run_dir=tmp_path))
    components = [
        _component("kafka", stop_timeout_s=25.5, priority=200),
        _component("api", stop_signal="INT", stop_timeout_s=12, priority=400),
        _component("feed"),
        _component("kinesis", stop_as_group=False),
    ]
    supervisor.conf_path.parent.mkdir(parents=True)
    supervisor.conf_path.write_text(supervisor.render(components))

    assert supervisor.programs() == ["kafka", "api", "feed", "kinesis"]
    sections = supervisor.conf_path.read_text().split("[program:")[1:]
    settings = {
        section.split("]")[0]: dict(
            line.split("=", 1) for line in section.splitlines()[1:] if "=" in line
        )
        for section in sections
    }
    assert (settings["kafka"]["stopsignal"], settings["kafka"]["stopwaitsecs"]) == ("TERM", "26")
    assert supervisor.priorities() == {"kafka": 200, "api": 400, "feed": 999, "kinesis": 999}
    assert (settings["api"]["stopsignal"], settings["api"]["stopwaitsecs"]) == ("INT", "12")
    assert settings["feed"]["stopwaitsecs"] == str(int(Component.stop_timeout_s))
    # the stop signal to the whole group, except for a process that stops its children itself;
    # SIGKILL to the whole group always
    assert [name for name, s in settings.items() if s["stopasgroup"] == "true"] == [
        "kafka",
        "api",
        "feed",
    ]
    assert settings["kinesis"]["stopasgroup"] == "false"
    assert all(s["killasgroup"] == "true" for s in settings.values())


def test_stop_outcome_reads_how_supervisord_saw_the_program_end(tmp_path: Path) -> None:
    settings = LocalSettings(run_dir=tmp_path)
    supervisor = Supervisor(settings)
    settings.logs_dir.mkdir(parents=True)
    (settings.logs_dir / "supervisord.log").write_text(
        "2026-01-01 10:00:00,000 WARN stopped: kafka (terminated by SIGKILL)\n"
        "2026-01-01 10:00:00,000 INFO stopped: kafka-ui (exit status 0)\n"
        "2026-01-02 10:00:00,000 WARN stopped: kafka (exit status 143)\n"
    )
    assert supervisor.stop_outcome("kafka") == "exit status 143"  # the latest stop
    assert supervisor.stop_outcome("kafka-ui") == "exit status 0"
    assert supervisor.stop_outcome("api") is None
