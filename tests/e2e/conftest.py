"""End-to-end fixtures: the sandbox and Airflow's components as real processes, driven over HTTP.

The fixtures ``sandbox``, ``stack_config``, ``local_stack``, ``local_clients`` and ``local``
live in ``tests/_stack_fixtures.py`` (loaded by tests/conftest.py), shared with the
integration tier: one sandbox process and one LocalExecutor stack serve the whole
session. The CeleryExecutor stack starts once for its module (it runs first, by name
order, and is stopped before the LocalExecutor stack starts: 2 cores). Each release
test starts from a reseeded sandbox and no active run.
"""
