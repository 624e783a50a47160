"""The judge: verdicts on metric samples (pure: no clock, no I/O)."""
