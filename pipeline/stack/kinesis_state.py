"""kinesis-mock's state file, kept whole across stops.

kinesis-mock writes its whole state to `PERSIST_PATH/kinesis-data.json` every `PERSIST_INTERVAL`
and once more on SIGTERM, by truncating the file and writing it again (fs2's `writeAll`). A stop
that lands mid-write leaves the file cut, and kinesis-mock then refuses to start: seen in the
chaos suite's whole-stack restart on a CPU-starved machine (SIGTERM during a write,
`ERR_STREAM_DESTROYED`, a 0-byte file, `NoSuchElementException` at every start, the streams and
their records gone). So the keeper kinesis-mock runs under (kinesis_keeper.py) keeps a whole
copy before each stop, taken once a periodic write made after the stop began is complete (at
`down`, the stream's writers and readers have stopped by then), and puts it back when the file is
not whole; `up` checks too before the keeper starts, to say so.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

STATE_FILE = "kinesis-data.json"
WHOLE_COPY = "kinesis-data.json.whole"
BROKEN_SUFFIX = ".broken"
POLL_S = 0.2


def is_whole(path: Path) -> bool:
    """The file exists and holds one complete JSON document (what kinesis-mock can load)."""
    try:
        json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return True


def keep_whole_copy(data_dir: Path, written_after: float, timeout_s: float) -> bool:
    """Copy the state file aside once a write that began after `written_after` (epoch seconds)
    is complete; False when none is within `timeout_s` (the copy then stays as it was)."""
    state = data_dir / STATE_FILE
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            fresh = state.stat().st_mtime > written_after
        except OSError:
            fresh = False
        if fresh and is_whole(state):
            partial = data_dir / f"{WHOLE_COPY}.partial"
            shutil.copyfile(state, partial)
            if is_whole(partial):  # not rewritten while it was copied
                os.replace(partial, data_dir / WHOLE_COPY)
                return True
        time.sleep(POLL_S)
    return False


def restore_if_cut(data_dir: Path) -> str | None:
    """Put the whole copy back when the state file is not whole; what was done, or None.

    With no whole copy, the cut file is moved aside (kept for inspection) so that kinesis-mock
    starts at all, empty: said loudly by the caller."""
    state = data_dir / STATE_FILE
    if not state.exists() or is_whole(state):
        return None
    copy = data_dir / WHOLE_COPY
    if is_whole(copy):
        shutil.copyfile(copy, state)
        return f"its state file was cut; restored the copy of {time.ctime(copy.stat().st_mtime)}"
    os.replace(state, state.with_name(STATE_FILE + BROKEN_SUFFIX))
    return (
        f"its state file was cut and no whole copy exists: moved aside as "
        f"{STATE_FILE + BROKEN_SUFFIX}; the streams start empty"
    )
