#!/usr/bin/env python3
"""The Deployments view with 500 recorded releases: ``.venv/bin/python bench/deployments_view_load.py``.

Generates N release records from the ones real sandbox releases wrote
(``tests/unit/deployments_view/captured``): each a copy of the successful release, the
canary breach rolled back, or the manual rollback, with its version, run and times moved
back along a year (one release every ~17 h for 500), and the summary ``record_outcome``
would write for it (``deployment.release.summary.build`` of those sections), put into a
moto S3 server reached over HTTP through the AWS connection, as the API server reaches S3.
Then times, through the plugin's app behind Airflow's SimpleAuthManager (a viewer's token):

- the releases page: ``GET /api/releases?limit=200`` (what the page asks for) and the page's
  other calls (``/api/dora?days=30``);
- the DORA endpoint for 7, 30 and 90 days;

the first answer ever (no copy of the summaries yet: each read one by one), then each once
cold (the first request of a new API server: the summaries listed, the view's copy read), the
time until the background listing of every section has looked for runs without a summary
(``complete``), then warm (median of 5: the answer built from the last snapshot, which a
background thread renews when older than ``REFRESH_SECONDS``), and the time one such renewal
(a listing of every section, objects read again only when their ETag changed) takes: how much
older than REFRESH_SECONDS the data can be. Target: cold and warm answers in at most 1 s.
Prints the figures; ``--json`` also writes them to a file.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RECORDS = ROOT / "tests" / "unit" / "deployments_view" / "captured" / "records" / "deployments"
sys.path[:0] = [str(ROOT / "include"), str(ROOT / "plugins")]
TARGET_SECONDS = 1.0
WARM_REPEATS = 5


def templates() -> dict[str, dict[str, Any]]:
    """The captured runs' sections, by kind: ``success``, ``breach``, ``manual``."""
    from deployment.release.summary import FOLDER

    runs: dict[str, dict[str, Any]] = {}
    for path in sorted(RECORDS.rglob("*.json")):
        folder, run, name = path.relative_to(RECORDS).parts[-3:]
        if path.relative_to(RECORDS).parts[0] == FOLDER:
            continue  # each generated run gets the summary its sections give (below)
        runs.setdefault(f"{folder}/{run}", {})[name.removesuffix(".json")] = json.loads(path.read_text())
    kinds = {}
    for key, sections in runs.items():
        status = sections["outcome"]["status"]
        kind = "manual" if key.startswith("manual-") else ("success" if status == "succeeded" else "breach")
        kinds[kind] = sections
    return kinds


def _shift(value: Any, delta: timedelta, replace: dict[str, str]) -> Any:
    """``value`` with every ISO timestamp moved by ``delta`` and every string in ``replace`` swapped."""
    if isinstance(value, dict):
        return {k: _shift(v, delta, replace) for k, v in value.items()}
    if isinstance(value, list):
        return [_shift(v, delta, replace) for v in value]
    if isinstance(value, str):
        if len(value) >= 19 and value[4] == "-" and value[10] == "T":
            try:
                return (datetime.fromisoformat(value) + delta).isoformat()
            except ValueError:
                pass
        for old, new in replace.items():
            value = value.replace(old, new)
    return value


def generate(count: int, now: datetime) -> dict[str, bytes]:
    """``count`` records as S3 keys → bodies: mostly successes, every 8th a breach, every 25th by hand;
    each run's sections and its summary."""
    from deployment.release import summary as release_summary

    kinds = templates()
    anchor = datetime.fromisoformat(kinds["success"]["conf"]["started_at"])
    step = timedelta(days=365) / count
    objects: dict[str, bytes] = {}
    for i in range(count):
        kind = "manual" if i % 25 == 24 else ("breach" if i % 8 == 7 else "success")
        template = kinds[kind]
        version = f"v{1 + i // 100}.{(i // 10) % 10}.{i % 10}"
        started = now - step * (count - i)
        delta = started - anchor
        old_run = template["outcome"]["run_id"]
        run = f"bench__{kind}__{i:04d}"
        swaps = {old_run: run, "v1.1.0": version}
        folder = "manual-rollbacks" if kind == "manual" else version
        sections = {name: _shift(copy.deepcopy(body), delta, swaps) for name, body in template.items()}
        for name, body in sections.items():
            objects[f"deployments/{folder}/{run}/{name}.json"] = json.dumps(body).encode()
        # what record_outcome writes when the run ends, from the same builder
        objects[release_summary.key("deployments", folder, run)] = json.dumps(
            release_summary.build(sections, folder, run)
        ).encode()
    return objects


def _until_complete(get, path: str) -> None:
    """Wait until the answer holds the runs without a summary too (the background listing is done)."""
    while not get(path)["complete"]:
        time.sleep(0.05)


def timed(call) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", type=int, default=500)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="bench-deployments-view-"))
    os.environ.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="viewer:viewer",
        AIRFLOW__API_AUTH__JWT_SECRET="bench-deployments-view-" + "x" * 48,
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
    )
    os.environ.setdefault("DEPLOYMENT_CONFIG", "sandbox")
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request

    from deployment.config import load_config

    cfg = load_config()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        os.environ[f"AIRFLOW_CONN_{cfg.connections.aws.upper()}"] = json.dumps(
            {
                "conn_type": "aws",
                "login": "bench",
                "password": "bench",
                "extra": {"region_name": cfg.region, "endpoint_url": endpoint},
            }
        )
        load = [round(x, 2) for x in os.getloadavg()]
        figures = {"load_average_at_start": load, **run(cfg, endpoint, args.releases)}
    finally:
        server.stop()
    print(f"Deployments view, {figures['releases']} releases ({figures['objects']} objects in S3 over HTTP):")
    for name, value in figures["timings"].items():
        if "cold_s" in value and "warm_median_s" not in value:
            once = f"{value['cold_s']:6.3f} s (CPU {value['cold_cpu_s']:5.3f} s; once per bucket)"
            print(f"  {name:<34} {once}")
            continue
        if name.startswith("background"):
            print(f"  {name:<34} {value['warm_median_s']:6.3f} s (median of 3; not on a request's path)")
            continue
        worst = max(value["cold_s"], value["warm_median_s"])
        print(
            f"  {name:<34} cold {value['cold_s']:6.3f} s (CPU {value['cold_cpu_s']:5.3f} s)"
            f"   warm median {value['warm_median_s']:6.3f} s"
            f"   {'ok' if worst <= TARGET_SECONDS else 'OVER'} (target {TARGET_SECONDS} s, cold and warm)"
            f"   complete (full listing done) after {value['complete_after_s']:6.3f} s"
        )
    print(
        f"  load average (1/5/15 min) at start {figures['load_average_at_start']}, at end "
        f"{figures['load_average_at_end']} on {os.cpu_count()} CPUs"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


def run(cfg, endpoint: str, count: int) -> dict[str, Any]:
    import airflow.models
    import boto3
    from airflow import settings
    from airflow.models.base import Base

    airflow.models.import_all_models()
    Base.metadata.create_all(settings.engine)
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=cfg.region)
    s3.create_bucket(
        Bucket=cfg.artifacts.bucket, CreateBucketConfiguration={"LocationConstraint": cfg.region}
    )
    now = datetime.now(UTC)
    objects = generate(count, now)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda kv: s3.put_object(Bucket=cfg.artifacts.bucket, Key=kv[0], Body=kv[1]), objects.items()
            )
        )

    from airflow.api_fastapi.app import init_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from deployments_view import URL_PREFIX, records
    from deployments_view.app import create_app
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    root = FastAPI()
    root.mount(URL_PREFIX, create_app())
    token = init_auth_manager(root).generate_jwt(SimpleAuthManagerUser(username="viewer", role="viewer"))
    client = TestClient(root, headers={"Authorization": f"Bearer {token}"})

    def get(path: str) -> dict:
        response = client.get(f"{URL_PREFIX}{path}")
        response.raise_for_status()
        return response.json()

    calls = {
        "releases page (limit=200)": "/api/releases?limit=200",
        "DORA 7 days": "/api/dora?days=7",
        "DORA 30 days": "/api/dora?days=30",
        "DORA 90 days": "/api/dora?days=90",
    }
    timings: dict[str, dict[str, float]] = {}
    checks: dict[str, Any] = {}
    # Once per bucket: the first answer before the view has its copy of the summaries (each read)
    records._stores.clear()
    cpu = time.process_time()
    first, _ = timed(lambda: get(calls["releases page (limit=200)"]))
    first_cpu = time.process_time() - cpu
    _until_complete(get, calls["releases page (limit=200)"])  # the background listing writes the copy
    timings["first answer ever (no copy yet)"] = {
        "cold_s": round(first, 4),
        "cold_cpu_s": round(first_cpu, 4),
    }
    for name, path in calls.items():
        records._stores.clear()  # cold: a new API server, nothing cached
        cpu = time.process_time()
        cold, body = timed(lambda p=path: get(p))
        cold_cpu = time.process_time() - cpu  # this process's threads, the moto server's included
        complete = timed(lambda p=path: _until_complete(get, p))[0]  # the background listing's work
        warm = [timed(lambda p=path: get(p))[0] for _ in range(WARM_REPEATS)]
        timings[name] = {
            "cold_s": round(cold, 4),
            "cold_cpu_s": round(cold_cpu, 4),
            "complete_after_s": round(cold + complete, 4),
            "warm_median_s": round(statistics.median(warm), 4),
            "warm_max_s": round(max(warm), 4),
        }
        checks[name] = body.get("total", body.get("deployments"))
    store = records.store_for(cfg)
    renewal = [timed(store._take_snapshot)[0] for _ in range(3)]
    timings["background renewal (listing)"] = {
        "cold_s": round(renewal[0], 4),
        "warm_median_s": round(statistics.median(renewal), 4),
        "warm_max_s": round(max(renewal), 4),
    }
    return {
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "releases": count,
        "objects": len(objects),
        "target_s": TARGET_SECONDS,
        "timings": timings,
        "answers": checks,
        "measured_at": now.isoformat(),
    }


def measure(count: int = 500) -> dict[str, Any]:
    """The figures above, from a process of their own (this benchmark sets Airflow's environment)."""
    import subprocess

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "figures.json"
        subprocess.run(
            [sys.executable, __file__, "--releases", str(count), "--json", str(out)],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=1800,
        )
        return json.loads(out.read_text())


if __name__ == "__main__":
    sys.exit(main())
