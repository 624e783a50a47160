"""Run this repository's DAGs on real Airflow components, as separate processes.

``env`` describes a stack (executor, database, ports, users) and turns it into
the environment every component shares; ``supervisor`` starts and stops the
components; ``client`` drives a running stack over the REST API as CI and
approvers do; ``compose`` renders the same description as docker-compose.yaml.
"""
