"""The release's outcome: its summary and the per-phase deployment metrics."""
