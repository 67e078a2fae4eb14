"""Unit tests: hermetic settings, and one small local SparkSession (Delta-enabled) for all."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from pipeline.config import get_settings

# Set by the test stack's fixtures (tests/conftest.py) or a developer's shell; a unit test sees
# only the defaults and what it sets itself, whichever tests ran before it in the session.
STACK_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_KINESIS",
)


@pytest.fixture(autouse=True)
def settings_from_defaults_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in list(os.environ):
        ours = key.startswith("PINPIPE_") and key != "PINPIPE_TEST_PORT_OFFSET"
        if ours or key in STACK_VARIABLES:
            monkeypatch.delenv(key)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
