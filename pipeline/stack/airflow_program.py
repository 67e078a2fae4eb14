"""`python -m pipeline.stack.airflow_program <airflow args>`: the `airflow` command, leaving
the process without the interpreter's teardown once it is done.

Airflow's heap is large: after the api-server or the scheduler had stopped on SIGTERM, Python's
final garbage collection and module teardown took 5-10 s per program on a busy 2-core machine,
most of `make down` (a thread dump during the wait showed only "Garbage-collecting"). Exit
handlers (Airflow's, logging's) still run; only the teardown after them is skipped.

Imports nothing of the pipeline: this process is Airflow's, and should weigh what Airflow does.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys


def run(args: list[str]) -> None:
    exit_code = [1]  # an exception escaping Airflow's main() ends the process with 1

    def leave() -> None:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(exit_code[0])

    # registered before Airflow registers its own handlers, so it runs after all of them
    atexit.register(leave)
    sys.argv = ["airflow", *args]
    from airflow.__main__ import main

    try:
        main()  # type: ignore[no-untyped-call]
        exit_code[0] = 0
    except SystemExit as done:
        code = done.code
        exit_code[0] = code if isinstance(code, int) else (0 if code is None else 1)
        raise


if __name__ == "__main__":
    run(sys.argv[1:])
