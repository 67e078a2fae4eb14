"""mitmproxy addon of the chaos suite: while the switch file exists, S3 requests are answered
with 503 SlowDown / 500 InternalError (alternately) instead of reaching the S3 server.

Kinesis calls are never failed: when S3 and Kinesis share one endpoint they are told apart by
the `X-Amz-Target: Kinesis_20131202.*` header every Kinesis JSON call carries.

Loaded by `mitmdump --mode reverse:http://<s3> -s s3_fault_addon.py --set s3_fault_switch=PATH`.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from mitmproxy import ctx, http  # type: ignore[import-not-found]  # own tool env

# Error bodies as S3 sends them: SDK retry logic keys on the code as well as the status.
_ERRORS = (
    (503, "SlowDown", "Please reduce your request rate."),
    (500, "InternalError", "We encountered an internal error. Please try again."),
)


class S3Faults:
    def __init__(self) -> None:
        self._next = itertools.cycle(_ERRORS)
        self.failed = 0

    def load(self, loader: object) -> None:
        loader.add_option(  # type: ignore[attr-defined]
            name="s3_fault_switch",
            typespec=str,
            default="",
            help="while this file exists, S3 requests get 503/500",
        )

    def request(self, flow: http.HTTPFlow) -> None:
        switch = ctx.options.s3_fault_switch
        if not switch or not Path(switch).exists():
            return
        if flow.request.headers.get("x-amz-target", "").startswith("Kinesis"):
            return
        status, code, message = next(self._next)
        self.failed += 1
        # the runner reads how many S3 requests the fault really hit
        Path(f"{switch}.count").write_text(str(self.failed))
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f"<Error><Code>{code}</Code><Message>{message}</Message>"
            f"<RequestId>chaos-{self.failed}</RequestId></Error>"
        )
        flow.response = http.Response.make(
            status, body.encode(), {"Content-Type": "application/xml"}
        )


addons = [S3Faults()]
