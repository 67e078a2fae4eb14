"""The kinesis container's entry point: kinesis-mock, its state file kept whole across stops.

kinesis-mock rewrites its state file in place; a stop that lands mid-write leaves it cut and
kinesis-mock then refuses to start (pipeline/stack/kinesis_state.py, copied beside this file,
says more). As the local stack's `down` and `up` do: before starting, a cut file is replaced by
the last whole copy; on SIGTERM (`docker compose stop`, whose clients of this container have
stopped first), a whole copy of a write made after the signal is kept, then kinesis-mock gets
the signal, and a file its stop cut is restored.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from kinesis_state import keep_whole_copy, restore_if_cut

PERSIST_INTERVAL_S = 2.0  # as PERSIST_INTERVAL in images/kinesis/Dockerfile
STOP_TIMEOUT_S = 15.0


def main(command: list[str]) -> int:
    data_dir = Path(os.environ["PERSIST_PATH"])
    if restored := restore_if_cut(data_dir):
        print(f"kinesis: {restored}", flush=True)
    server = subprocess.Popen(command)

    def stop(signum: int, _frame: FrameType | None) -> None:
        if not keep_whole_copy(data_dir, time.time(), timeout_s=4 * PERSIST_INTERVAL_S):
            print("kinesis: no complete state write in time; the last copy stays", flush=True)
        server.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        code = server.wait()
    except BaseException:
        server.kill()
        raise
    if restored := restore_if_cut(data_dir):
        print(f"kinesis: {restored}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["node", "/opt/kinesis-mock/main.js"]))
