"""The release the phase 1–4 unit tests deploy: v1.1.0 over a production at v1.0.0."""

VERSION = "v1.1.0"
PREVIOUS = "v1.0.0"
RUN_ID = "manual__2026-01-02T03:04:05+00:00"
AUTHOR = "alice"
COMMIT = "a" * 40
PREVIOUS_COMMIT = "b" * 40
