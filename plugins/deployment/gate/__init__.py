"""The approval gate: the approval requests, the plan the approvers read, the proof of the gate
at each change to production, the roles, and the pipeline's read-only view of Airflow."""
