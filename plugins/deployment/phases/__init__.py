"""The release's phases: one task-group factory per phase, each module named as its group."""
