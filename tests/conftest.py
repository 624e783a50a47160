"""Every test runs against a throwaway Airflow home: SQLite, no example DAGs, our dags/."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_home = tempfile.mkdtemp(prefix="airflow-home-")
os.environ["AIRFLOW_HOME"] = _home
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_home}/airflow.db"
os.environ.setdefault("DEPLOYMENT_CONFIG", "sandbox")

# The session's sandbox and LocalExecutor stack (fixtures ``sandbox``, ``stack_config``, ``local_stack``,
# ``local_clients``, ``local``), shared by tests/integration and tests/e2e. Imports nothing heavy.
pytest_plugins = ["_stack_fixtures"]
