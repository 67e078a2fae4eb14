"""One settings object for every target, chosen by an environment code (PINPIPE_TARGET)."""

from pipeline.config.settings import (
    AwsSettings,
    DockerSettings,
    LocalSettings,
    Settings,
    Target,
    get_settings,
)

__all__ = ["AwsSettings", "DockerSettings", "LocalSettings", "Settings", "Target", "get_settings"]
