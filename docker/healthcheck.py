#!/usr/bin/env python3
"""Container healthchecks with the standard library only: every image has python3, none has curl.

    healthcheck.py http URL                   healthy when URL answers 2xx
    healthcheck.py json URL KEY.PATH=VALUE    ... and its JSON body has VALUE at KEY.PATH
    healthcheck.py kafka HOST:PORT            healthy when the broker answers ApiVersions
    healthcheck.py kinesis URL                healthy when the Kinesis server answers ListStreams

Exit status 0 is healthy, 1 unhealthy (what Docker's HEALTHCHECK expects), with one line saying why.
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import urllib.error
import urllib.request
from collections.abc import Callable

TIMEOUT_S = 4.0
API_VERSIONS_KEY = 18


def check_http(url: str) -> str | None:
    """None when `url` answers 2xx, else the reason."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            status: int = response.status
    except urllib.error.HTTPError as error:
        return f"{url} answered {error.code}"
    except (urllib.error.URLError, OSError) as error:
        return f"{url} unreachable: {error}"
    return None if 200 <= status < 300 else f"{url} answered {status}"


def check_json(url: str, expected: str) -> str | None:
    """None when `url` answers 2xx with JSON holding VALUE at KEY.PATH (`expected`)."""
    path, _, wanted = expected.partition("=")
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            value = json.load(response)
    except urllib.error.HTTPError as error:
        return f"{url} answered {error.code}"
    except (urllib.error.URLError, OSError, ValueError) as error:
        return f"{url} unreachable or not JSON: {error}"
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return None if str(value) == wanted else f"{url}: {path} is {value!r}, not {wanted!r}"


# the Kinesis API's JSON protocol; a local server wants an Authorization header, not a valid one
KINESIS_LIST_STREAMS_HEADERS = {
    "Content-Type": "application/x-amz-json-1.1",
    "X-Amz-Target": "Kinesis_20131202.ListStreams",
    "X-Amz-Date": "20260101T000000Z",
    "Authorization": "AWS4-HMAC-SHA256 Credential=healthcheck/20260101/us-east-1/kinesis/"
    "aws4_request, SignedHeaders=host, Signature=healthcheck",
}


def check_kinesis(url: str) -> str | None:
    """None when the Kinesis server at `url` answers ListStreams with its stream names."""
    request = urllib.request.Request(
        url, data=b"{}", headers=KINESIS_LIST_STREAMS_HEADERS, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            body = json.load(response)
    except urllib.error.HTTPError as error:
        return f"{url} answered ListStreams with {error.code}"
    except (urllib.error.URLError, OSError, ValueError) as error:
        return f"{url} unreachable or not JSON: {error}"
    return None if "StreamNames" in body else f"{url}: ListStreams answered {body!r}"


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        data += chunk
    return data


def api_versions_request(correlation_id: int, client_id: bytes = b"healthcheck") -> bytes:
    """A Kafka ApiVersions v0 request (header v1): every broker version answers it."""
    header = struct.pack(">hhih", API_VERSIONS_KEY, 0, correlation_id, len(client_id)) + client_id
    return struct.pack(">i", len(header)) + header


def check_kafka(address: str) -> str | None:
    """None when the broker at `host:port` answers ApiVersions with no error, else the reason."""
    host, _, port = address.rpartition(":")
    correlation_id = 7
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), TIMEOUT_S) as sock:
            sock.settimeout(TIMEOUT_S)
            sock.sendall(api_versions_request(correlation_id))
            (size,) = struct.unpack(">i", _read_exactly(sock, 4))
            body = _read_exactly(sock, size)
        answered_id, error_code, api_count = struct.unpack(">ihi", body[:10])
    except (OSError, ValueError, struct.error) as error:
        return f"kafka {address} unreachable: {error}"
    if answered_id != correlation_id:
        return f"kafka {address} answered another request ({answered_id})"
    if error_code != 0 or api_count <= 0:
        return f"kafka {address} answered ApiVersions with error {error_code}"
    return None


CHECKS: dict[str, tuple[int, Callable[..., str | None]]] = {
    "http": (1, check_http),
    "json": (2, check_json),
    "kafka": (1, check_kafka),
    "kinesis": (1, check_kinesis),
}


def main(argv: list[str]) -> int:
    arity, check = CHECKS.get(argv[0] if argv else "", (-1, check_http))
    if len(argv) != arity + 1:
        usage = f"usage: healthcheck.py {{{'|'.join(CHECKS)}}} TARGET [KEY.PATH=VALUE]"
        print(usage, file=sys.stderr)
        return 2
    problem = check(*argv[1:])
    print(problem or f"{' '.join(argv)}: healthy")
    return 1 if problem else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
