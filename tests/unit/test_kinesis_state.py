"""kinesis-mock's state file kept whole (pipeline.stack.kinesis_state), against the real
kinesis-mock writing its state every half second."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.config import get_settings
from pipeline.stack.kinesis_state import (
    BROKEN_SUFFIX,
    STATE_FILE,
    WHOLE_COPY,
    is_whole,
    keep_whole_copy,
    restore_if_cut,
)
from pipeline.stack.servers import kinesis_environment, kinesis_mock_main, node_binary
from tests.support.ports import free_port
from tests.support.waiting import wait_for


@pytest.fixture
def kinesis_mock(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    node = node_binary()
    main = kinesis_mock_main(get_settings())
    if node is None or not main.is_file():
        pytest.fail(f"kinesis-mock needs node and {main}: run `make setup`")
    settings = get_settings().model_copy(
        update={"kinesis_port": free_port(), "kinesis_tls_port": free_port()}
    )
    environment = {
        **os.environ,
        **kinesis_environment(settings, tmp_path),
        "PERSIST_INTERVAL": "500ms",
    }
    process = subprocess.Popen(
        [node, str(main)], env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for(lambda: is_whole(tmp_path / STATE_FILE), 60, "kinesis-mock's first state write")
        yield process
    finally:
        process.terminate()
        process.wait(30)


def test_a_whole_file_is_json_a_cut_one_is_not(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE
    assert not is_whole(path)  # missing
    path.write_bytes(b"")
    assert not is_whole(path)
    path.write_bytes(b'{"streams": {"a": ')
    assert not is_whole(path)
    path.write_bytes(b'{"streams": {}}')
    assert is_whole(path)


def test_the_copy_is_of_a_write_made_after_the_given_time(
    kinesis_mock: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    since = time.time()
    assert keep_whole_copy(tmp_path, since, timeout_s=30)
    copy = tmp_path / WHOLE_COPY
    assert is_whole(copy)
    assert (tmp_path / STATE_FILE).stat().st_mtime > since
    assert not (tmp_path / f"{WHOLE_COPY}.partial").exists()


def test_no_copy_without_a_newer_write(
    kinesis_mock: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    kinesis_mock.terminate()
    kinesis_mock.wait(30)
    assert not keep_whole_copy(tmp_path, time.time() + 1, timeout_s=2)
    assert not (tmp_path / WHOLE_COPY).exists()


def test_a_cut_file_is_replaced_by_the_whole_copy(tmp_path: Path) -> None:
    (tmp_path / WHOLE_COPY).write_bytes(b'{"streams": {"pin": []}}')
    (tmp_path / STATE_FILE).write_bytes(b'{"streams": {"pi')
    assert restore_if_cut(tmp_path) is not None
    assert (tmp_path / STATE_FILE).read_bytes() == b'{"streams": {"pin": []}}'


def test_a_whole_file_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / WHOLE_COPY).write_bytes(b'{"streams": {}}')
    (tmp_path / STATE_FILE).write_bytes(b'{"streams": {"newer": []}}')
    assert restore_if_cut(tmp_path) is None
    assert (tmp_path / STATE_FILE).read_bytes() == b'{"streams": {"newer": []}}'


def test_without_a_copy_the_cut_file_is_moved_aside_so_kinesis_mock_starts(
    tmp_path: Path,
) -> None:
    (tmp_path / STATE_FILE).write_bytes(b"")
    reason = restore_if_cut(tmp_path)
    assert reason is not None and "start empty" in reason
    assert not (tmp_path / STATE_FILE).exists()
    assert (tmp_path / (STATE_FILE + BROKEN_SUFFIX)).exists()
