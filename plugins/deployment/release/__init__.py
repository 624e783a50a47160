"""The release: the registry of its phases, its outcome summary and the per-phase deployment metrics."""
