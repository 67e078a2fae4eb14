"""How `down` orders and configures the stop of each component (the real stop is tested in
tests/integration/test_stack_shutdown.py)."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import LocalSettings
from pipeline.stack.components import Component
from pipeline.stack.stack import stop_order
from pipeline.stack.supervisor import Supervisor


def _component(name: str, **stop: object) -> Component:
    return Component(
        name=name,
        command=["true"],
        ports=[],
        url="",
        ready=lambda _: True,
        **stop,  # type: ignore[arg-type]
    )


def test_stop_order_is_the_reverse_of_the_start_order() -> None:
    started = ["s3", "kinesis", "kafka", "connect", "api", "stream", "feed-batch"]
    assert stop_order(started, started) == [
        "feed-batch", "stream", "api", "connect", "kafka", "kinesis", "s3",
    ]  # fmt: skip
    # a program supervisord runs that the configuration no longer lists stops first
    assert stop_order(["kafka", "api"], ["api", "kafka", "old-feed"]) == [
        "old-feed",
        "api",
        "kafka",
    ]


def test_each_program_gets_its_stop_signal_and_timeout_in_start_order(tmp_path: Path) -> None:
    supervisor = Supervisor(LocalSettings(run_dir=tmp_path))
    components = [
        _component("kafka", stop_timeout_s=25.5),
        _component("api", stop_signal="INT", stop_timeout_s=12),
        _component("feed"),
    ]
    supervisor.conf_path.parent.mkdir(parents=True)
    supervisor.conf_path.write_text(supervisor.render(components))

    assert supervisor.programs() == ["kafka", "api", "feed"]
    sections = supervisor.conf_path.read_text().split("[program:")[1:]
    settings = {
        section.split("]")[0]: dict(
            line.split("=", 1) for line in section.splitlines()[1:] if "=" in line
        )
        for section in sections
    }
    assert (settings["kafka"]["stopsignal"], settings["kafka"]["stopwaitsecs"]) == ("TERM", "26")
    assert (settings["api"]["stopsignal"], settings["api"]["stopwaitsecs"]) == ("INT", "12")
    assert settings["feed"]["stopwaitsecs"] == str(int(Component.stop_timeout_s))
    assert all(s["stopasgroup"] == "true" for s in settings.values())


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
