"""The release the phase 1–4 unit tests deploy: v1.1.0 over a production at v1.0.0."""

VERSION = "v1.1.0"
PREVIOUS = "v1.0.0"
RUN_ID = "manual__2026-01-02T03:04:05+00:00"
AUTHOR = "alice"
COMMIT = "a" * 40
PREVIOUS_COMMIT = "b" * 40
PARAMS = {"version": VERSION, "commit_sha": COMMIT, "author": AUTHOR, "emergency": {}}


class RunTI:
    """The task instance a task's context holds, as far as reading its run's task states goes."""

    dag_id = "deploy_production"

    def __init__(self, states: dict[str, str]) -> None:
        self.states = states

    def get_task_states(self, dag_id, run_ids):
        return {RUN_ID: self.states}
