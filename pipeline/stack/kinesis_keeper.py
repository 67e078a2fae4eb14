"""kinesis-mock under a keeper: its state file kept whole across stops, and the server restarted
when its plain HTTP port stops answering. The local stack's `kinesis` program and the compose
`kinesis` container both run kinesis-mock through this script (the image copies it beside
kinesis_state.py; it needs only the standard library).

Liveness: under load kinesis-mock once stopped listening on its plain port while its process and
TLS port stayed up; supervisord and compose see only a live process, so nothing restarted it and
every client waited. So every `PROBE_INTERVAL_S` a ListStreams goes to the plain port, and after
`MISSES_BEFORE_RESTART` misses in a row kinesis-mock is stopped the orderly way and started again.

State: kinesis-mock rewrites its state file in place; a stop that lands mid-write leaves it cut and
kinesis-mock then refuses to start (kinesis_state.py says more). Before a start, a cut file is
replaced by the last whole copy; before a stop (SIGTERM from supervisord or `docker compose stop`,
whose clients of this server have stopped first, or a liveness restart), a whole copy of a write
made after that moment is kept, then kinesis-mock gets SIGTERM (SIGKILL if it has not exited
within `STOP_TIMEOUT_S`), and a file its stop cut is restored. While the server answers, the copy
is also refreshed every `COPY_EVERY_S`: a server frozen mid-write writes nothing more before it is
killed, and its cut file then falls back to that copy.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

try:
    from pipeline.stack.kinesis_state import keep_whole_copy, restore_if_cut
except ModuleNotFoundError:  # in the kinesis image: beside kinesis_state.py, no package
    from kinesis_state import (  # type: ignore[import-not-found,no-redef]
        keep_whole_copy,
        restore_if_cut,
    )

# Constants, not settings: they follow kinesis-mock's behaviour, not a deployment's. A server that
# is slow for a few seconds under load is left alone (a restart reloads its whole state, which
# costs more); one that has not answered for ~15-30 s is restarted.
PROBE_INTERVAL_S = 5.0
PROBE_TIMEOUT_S = 5.0
MISSES_BEFORE_RESTART = 3
# After a start, misses count once it has answered, or after this: loading a large state file on
# a starved machine takes a while, and a server that never comes up must still be restarted.
START_GRACE_S = 120.0
# Each refresh parses the state file twice: ~0.2 s of CPU for a 25 MB state, once a minute.
COPY_EVERY_S = 60.0
STOP_TIMEOUT_S = 15.0
POLL_S = 0.2
DEFAULT_PERSIST_INTERVAL_S = 2.0
# A stop waits up to this many PERSIST_INTERVALs for a complete write to copy: writing a large
# state on a starved machine takes seconds.
COPY_WAIT_FACTOR = 8


def persist_interval_s(value: str | None) -> float:
    """kinesis-mock's PERSIST_INTERVAL ("2s", "500ms") in seconds; the default when unset."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s)\s*", value or "")
    if match is None:
        return DEFAULT_PERSIST_INTERVAL_S
    number = float(match.group(1))
    return number / 1000 if match.group(2) == "ms" else number


def stop_budget_s(persist_s: float = DEFAULT_PERSIST_INTERVAL_S) -> float:
    """How long an orderly stop may take (a probe under way, the copy, kinesis-mock's exit after
    SIGTERM or SIGKILL, a restore): the supervisor's stop timeout must allow it."""
    return PROBE_TIMEOUT_S + COPY_WAIT_FACTOR * persist_s + STOP_TIMEOUT_S + 5


def miss(port: int) -> str | None:
    """None when ListStreams on the plain port answers 200, else why not."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=PROBE_TIMEOUT_S)
    try:
        connection.request(
            "POST",
            "/",
            body=b"{}",
            headers={
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": "Kinesis_20131202.ListStreams",
                # kinesis-mock checks that a request is signed, not the signature
                "Authorization": "AWS4-HMAC-SHA256 Credential=probe/20240101/us-east-1/kinesis/"
                "aws4_request, SignedHeaders=host, Signature=0",
                "X-Amz-Date": "20240101T000000Z",
            },
        )
        response = connection.getresponse()
        response.read()
    except (OSError, http.client.HTTPException) as error:
        return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    finally:
        connection.close()
    return None if response.status == 200 else f"HTTP {response.status}"


def say(message: str) -> None:
    print(f"kinesis: {message}", flush=True)


class Keeper:
    def __init__(self, command: list[str], data_dir: Path, port: int, persist_s: float) -> None:
        self.command = command
        self.data_dir = data_dir
        self.port = port
        self.persist_s = persist_s
        self.server = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        if restored := restore_if_cut(self.data_dir):
            say(restored)
        self.started = time.monotonic()
        self.answered = False
        self.misses = 0
        self.next_probe = self.started + PROBE_INTERVAL_S
        self.copied_at = 0.0
        return subprocess.Popen(self.command)

    def stop(self, signum: int) -> int:
        """The orderly stop: a whole copy of a write made from now on, the signal, SIGKILL after
        `STOP_TIMEOUT_S`, the copy put back if the stop cut the file; kinesis-mock's exit code."""
        if not keep_whole_copy(self.data_dir, time.time(), COPY_WAIT_FACTOR * self.persist_s):
            say("no complete state write in time; the last whole copy stays")
        self.server.send_signal(signum)
        try:
            code = self.server.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            say(f"kinesis-mock did not exit within {STOP_TIMEOUT_S:g} s of the signal; killed")
            self.server.kill()
            code = self.server.wait()
        if restored := restore_if_cut(self.data_dir):
            say(restored)
        return code

    def check(self) -> None:
        """One probe when due; the restart after too many misses in a row."""
        now = time.monotonic()
        if now < self.next_probe:
            return
        self.next_probe = now + PROBE_INTERVAL_S
        why = miss(self.port)
        if why is None:
            self.answered = True
            self.misses = 0
            if time.time() - self.copied_at >= COPY_EVERY_S:
                since = self.copied_at
                self.copied_at = time.time()
                keep_whole_copy(self.data_dir, since, self.persist_s + 1)
            return
        if not self.answered and now - self.started < START_GRACE_S:
            return
        self.misses += 1
        if self.misses >= MISSES_BEFORE_RESTART:
            say(
                f"port {self.port} missed {self.misses} probes in a row ({why}); "
                "restarting kinesis-mock"
            )
            self.stop(signal.SIGTERM)
            self.server = self._start()


def main(command: list[str]) -> int:
    persist_s = persist_interval_s(os.environ.get("PERSIST_INTERVAL"))
    keeper = Keeper(
        command,
        Path(os.environ["PERSIST_PATH"]),
        int(os.environ.get("KINESIS_MOCK_PLAIN_PORT", "4567")),
        persist_s,
    )
    # The handler only records the signal: the loop owns every step on the server.
    requested: list[int] = []

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        requested.append(signum)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        while not requested:
            code = keeper.server.poll()
            if code is not None:  # exited by itself: the supervisor restarts the keeper
                say(f"kinesis-mock exited ({code})")
                if restored := restore_if_cut(keeper.data_dir):
                    say(restored)
                return code
            keeper.check()
            time.sleep(POLL_S)
        return keeper.stop(requested[0])
    except BaseException:
        keeper.server.kill()
        raise


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["node", "/opt/kinesis-mock/main.js"]))
