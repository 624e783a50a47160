"""Run the whole sandbox in one process: every emulator on its loopback port, seeded.

Ports from the base port B: B+0 AWS (moto + Amplify + CloudFormation layer),
B+1 GitHub, B+2 Slack webhooks, B+3 status page, B+4 SMTP, B+5 app blue,
B+6 app green, B+7 control API, B+8 PagerDuty Events API, B+9 the front door
(the CloudFront distribution in front of both apps). Each HTTP service is a werkzeug server in a
thread; SMTP is aiosmtpd's controller thread; the traffic simulator has its
own. :class:`Sandbox` is what ``python -m sandbox run`` and the tests'
:func:`sandbox.testing.running_sandbox` start.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import boto3
from moto.moto_api._internal.models import moto_api_backend
from moto.moto_server.werkzeug_app import MotoRequestHandler
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from deployment.config import DeploymentConfig
from sandbox.amplify import AmplifyEmulator
from sandbox.app import ApiHandler, ColourApp, DynamoContentStore
from sandbox.aws import AwsFront
from sandbox.control import ControlApi
from sandbox.faults import Faults
from sandbox.frontdoor import FrontDoor, FunctionRunner
from sandbox.github import GitHubEmulator
from sandbox.kvs import KeyValueStoreEmulator
from sandbox.lambda_invoke import LambdaInvoke
from sandbox.pagerduty import PagerDutyEvents
from sandbox.recorder import Recorder
from sandbox.seed import CREDENTIALS, STABLE_COLOUR, route53_weights, seed_aws, seed_front_door, seed_github
from sandbox.slack import SlackWebhooks
from sandbox.smtp import SmtpSink
from sandbox.statuspage import StatusPage
from sandbox.traffic import TrafficSimulator

log = logging.getLogger(__name__)

# The smoke-test account the apps accept; the pipeline reads it from the app connections.
SMOKE_ACCOUNT = {"login": "smoke-test", "password": "smoke-test-password"}
HOST = "127.0.0.1"
PORT_OFFSETS = {
    "aws": 0,
    "github": 1,
    "slack": 2,
    "statuspage": 3,
    "smtp": 4,
    "app_blue": 5,
    "app_green": 6,
    "control": 7,
    "pagerduty": 8,
    "frontdoor": 9,
}
GITHUB_TOKEN = "sandbox-github-token"
STATUSPAGE_KEY = "sandbox-statuspage-key"
PAGERDUTY_ROUTING_KEY = "sandboxpagerdutyroutingkey000001"  # 32 characters, as PagerDuty's are
_one_per_process = threading.Lock()  # moto's state is global to the process
SANDBOX_KVS_ARN = "arn:aws:cloudfront::123456789012:key-value-store/5a4db0b6-0000-4000-8000-000000000001"
SLACK_PATHS = {"team": "T0SANDBOX/B0TEAM/sandbox-team", "company": "T0SANDBOX/B0COMPANY/sandbox-company"}


class _QuietHandler(WSGIRequestHandler):
    """No access log line per request (the AWS request log and the recorders keep what matters)."""

    def log_request(self, *args: Any) -> None:
        pass


class _QuietMotoHandler(MotoRequestHandler):
    def log_request(self, *args: Any) -> None:
        pass


class _Swappable:
    """A WSGI app whose target can be replaced (reseeding rebuilds stateful emulators)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self.app(environ, start_response)


class Sandbox:
    """Every emulator, seeded as production at the previous version; ``start()``/``stop()``."""

    def __init__(
        self,
        cfg: DeploymentConfig,
        *,
        base_port: int = 5100,
        job_seconds: float = 2.0,
        update_seconds: float = 2.0,
        traffic: bool = True,
        host: str = HOST,
        public_host: str | None = None,
    ) -> None:
        """``host`` is the address the servers bind; ``public_host`` the name clients use for
        them (in endpoints and connections), by default ``host`` unless that is a wildcard."""
        self.cfg = cfg
        self.base_port = base_port
        self.host = host
        self.public_host = public_host or (HOST if host in ("0.0.0.0", "::") else host)
        self.ports = {name: base_port + offset for name, offset in PORT_OFFSETS.items()}
        self.endpoints = {
            name: f"{'smtp' if name == 'smtp' else 'http'}://{self.public_host}:{port}"
            for name, port in self.ports.items()
        }
        self.faults = Faults()
        self.amplify = AmplifyEmulator(
            self.faults,
            region=cfg.region,
            job_seconds=job_seconds,
            version_variable=cfg.amplify.version_variable,
        )
        self.kvs = KeyValueStoreEmulator()
        self._function: FunctionRunner | None = None
        self.lambda_invoke = LambdaInvoke(ApiHandler(faults=self.faults, **self._api_settings()))
        self.aws = AwsFront(
            self.amplify,
            self.faults,
            kvs=self.kvs,
            invoke=self.lambda_invoke,
            version_parameter=cfg.stack.version_parameter,
            update_seconds=update_seconds,
        )
        self._traffic_enabled = traffic
        self.traffic_router = cfg.traffic.router
        self.traffic: TrafficSimulator | None = None
        self.github: GitHubEmulator | None = None
        self.statuspage: StatusPage | None = None
        self.slack: SlackWebhooks | None = None
        self.pagerduty: PagerDutyEvents | None = None
        self.apps: dict[str, ColourApp] = {}
        self._github_app = _Swappable(None)
        self._statuspage_app = _Swappable(None)
        self._servers: list[tuple[BaseWSGIServer, threading.Thread]] = []
        self._smtp: SmtpSink | None = None
        self._lock = threading.Lock()
        self._started = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Serve everything, seed it, start the traffic; the control API answers last."""
        if not _one_per_process.acquire(blocking=False):
            raise RuntimeError("a sandbox already runs in this process (moto's state is global): reuse it")
        self._started = True
        moto_api_backend.reset()
        try:
            self._serve("aws", self.aws, _QuietMotoHandler)
            self._build_stateful()
            self._serve("github", self._github_app)
            self.slack = self._slack_app()
            self._serve("slack", self.slack)
            self._serve("statuspage", self._statuspage_app)
            self.pagerduty = PagerDutyEvents([PAGERDUTY_ROUTING_KEY], faults=self.faults)
            self._serve("pagerduty", self.pagerduty)
            for colour in ("blue", "green"):
                self.apps[colour] = self._colour_app(colour)
                self._serve(f"app_{colour}", self.apps[colour])
            self._function = FunctionRunner()
            self._serve("frontdoor", self._front_door(self._function))
            self._smtp = SmtpSink(self.ports["smtp"], self.host, faults=self.faults)
            self._smtp.start()
            self._seed()
            self._serve("control", ControlApi(self))
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every thread this sandbox started; safe to call twice."""
        if not self._started:
            return
        if self.traffic is not None:
            self.traffic.stop()
            self.traffic = None
        for server, thread in reversed(self._servers):
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)  # serve_forever polls for shutdown every 0.1 s
        self._servers.clear()
        if self._smtp is not None:
            self._smtp.stop()
            self._smtp = None
        self.aws.cloudformation.shutdown()
        if self._function is not None:
            self._function.close()
            self._function = None
        self._started = False
        _one_per_process.release()

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- control API
    @property
    def recorders(self) -> dict[str, Recorder]:
        """What each emulator recorded, by service name (those running)."""
        emulators = {
            "github": self.github,
            "slack": self.slack,
            "statuspage": self.statuspage,
            "pagerduty": self.pagerduty,
            "smtp": self._smtp,
            "app_blue": self.apps.get("blue"),
            "app_green": self.apps.get("green"),
            "lambda": self.lambda_invoke,
            "traffic": self.traffic,
        }
        return {name: emulator.recorder for name, emulator in emulators.items() if emulator is not None}

    def reset(self) -> None:
        """Clear faults and everything recorded; the seeded (and since changed) state stays."""
        self.faults.clear()
        for recorder in self.recorders.values():
            recorder.clear()
        self.aws.requests.clear()

    def reseed(self) -> None:
        """Back to the freshly seeded state: AWS, Amplify, GitHub and the status page rebuilt."""
        with self._lock:
            if self.traffic is not None:
                self.traffic.stop()
                self.traffic = None
            self.aws.cloudformation.shutdown()
            moto_api_backend.reset()
            self.amplify.reset()
            self._build_stateful()
            self.reset()
            self.traffic_router = self.cfg.traffic.router
            self._seed()

    def route_traffic(self, router: str) -> None:
        """Send the simulated viewers by ``router``'s state: ``keyvaluestore`` through the front
        door, ``route53`` by the weighted records (a test whose pipeline uses the other router)."""
        if router not in ("keyvaluestore", "route53"):
            raise ValueError(f"no such router {router!r}")
        with self._lock:
            self.traffic_router = router
            if self.traffic is not None:
                self.traffic.stop()
                self.traffic = None
                self._start_traffic()

    def traffic_state(self) -> dict[str, Any]:
        """How viewers are routed now: the router the simulated viewers follow and the split it
        serves. Through the front door (``keyvaluestore``): what its function reads from the store
        (its probe, ``routing``), and how the last tick's viewers were spread; by ``route53``: the
        weighted records."""
        state: dict[str, Any] = {"router": self.traffic_router, "configured": self.cfg.traffic.router}
        if self.traffic_router == "keyvaluestore":
            import requests

            from deployment.traffic.front_door import routing_weights

            probe = self.cfg.traffic.front_door.probe_path if self.cfg.traffic.front_door else "/__frontdoor"
            routing = requests.get(self.endpoints["frontdoor"] + probe, timeout=10).json()
            state["routing"] = routing
            state["weights"] = routing_weights(routing) if routing.get("stable") else None
            ticks = [t for t in self.traffic.recorder.list() if "viewers" in t] if self.traffic else []
            state["viewers"] = ticks[-1]["viewers"] if ticks else None
        else:
            state["weights"] = route53_weights(self.cfg, self.aws_client("route53"))
        return state

    def set_alarm_state(self, name: str, state: str, reason: str) -> None:
        self.aws_client("cloudwatch").set_alarm_state(AlarmName=name, StateValue=state, StateReason=reason)

    def aws_client(self, service: str) -> Any:
        return boto3.client(
            service, endpoint_url=self.endpoints["aws"], region_name=self.cfg.region, **CREDENTIALS
        )

    def version_of(self, colour: str) -> str | None:
        """The version the ``colour`` branch serves (its last SUCCEED Amplify job)."""
        return self.amplify.served_version(self.cfg.amplify.app_id, self.cfg.amplify.branches[colour])

    # ---------------------------------------------------------------- connections
    def connections(self) -> dict[str, dict[str, Any]]:
        """Every Airflow connection of the configuration, pointed at this sandbox."""
        ids, notes = self.cfg.connections, self.cfg.notifications
        slack = self.endpoints["slack"] + "/services/"
        http = {"conn_type": "http"}
        return {
            ids.aws: {
                "conn_type": "aws",
                "login": CREDENTIALS["aws_access_key_id"],
                "password": CREDENTIALS["aws_secret_access_key"],
                "extra": {
                    "endpoint_url": self.endpoints["aws"],
                    "region_name": self.cfg.region,
                    # the KVS client's endpoint rules prefix the account ID to the host: go by proxy
                    "service_config": {
                        "cloudfront-keyvaluestore": {
                            "endpoint_url": self.endpoints["aws"],
                            "proxy_url": self.endpoints["aws"],
                        }
                    },
                },
            },
            ids.github: {"conn_type": "github", "host": self.endpoints["github"], "password": GITHUB_TOKEN},
            ids.slack_team: {"conn_type": "slackwebhook", "password": slack + SLACK_PATHS["team"]},
            ids.slack_company: {"conn_type": "slackwebhook", "password": slack + SLACK_PATHS["company"]},
            ids.smtp: {
                "conn_type": "smtp",
                "host": self.public_host,
                "port": self.ports["smtp"],
                "extra": {"disable_ssl": True, "disable_tls": True, "from_email": notes.email_from},
            },
            ids.statuspage: {**http, "host": self.endpoints["statuspage"], "password": STATUSPAGE_KEY},
            ids.pagerduty: {
                "conn_type": "pagerduty_events",
                "host": self.endpoints["pagerduty"],
                "password": PAGERDUTY_ROUTING_KEY,
            },
            ids.app_blue: {**http, "host": self.endpoints["app_blue"], **SMOKE_ACCOUNT},
            ids.app_green: {**http, "host": self.endpoints["app_green"], **SMOKE_ACCOUNT},
            **({ids.front_door: {**http, "host": self.endpoints["frontdoor"]}} if ids.front_door else {}),
        }

    def connections_env(self) -> dict[str, str]:
        """``{"AIRFLOW_CONN_<ID>": "<json>"}`` for every connection."""
        return {f"AIRFLOW_CONN_{cid.upper()}": json.dumps(conn) for cid, conn in self.connections().items()}

    def write_state(self, state_dir: Path) -> None:
        """Write ``connections.env`` (sourceable) and ``endpoints.json`` into ``state_dir``."""
        state_dir.mkdir(parents=True, exist_ok=True)
        lines = [f"export {name}='{value}'" for name, value in self.connections_env().items()]
        (state_dir / "connections.env").write_text("\n".join(lines) + "\n")
        (state_dir / "endpoints.json").write_text(json.dumps(self.endpoints, indent=2) + "\n")

    # ------------------------------------------------------------------ internals
    def _serve(self, name: str, app: Any, handler: type[WSGIRequestHandler] = _QuietHandler) -> None:
        port = self.ports[name]
        try:
            server = make_server(self.host, port, app, threaded=True, request_handler=handler)
        except (OSError, SystemExit) as err:  # werkzeug exits when the port is taken
            reason = err.strerror if isinstance(err, OSError) else "the port is in use"
            raise OSError(f"cannot serve the sandbox's {name} on {self.host}:{port}: {reason}") from None
        thread = threading.Thread(
            target=server.serve_forever, args=(0.1,), name=f"sandbox-{name}", daemon=True
        )
        thread.start()
        self._servers.append((server, thread))

    def _build_stateful(self) -> None:
        notes = self.cfg.notifications
        self.github = GitHubEmulator(self.cfg.github.repository, GITHUB_TOKEN, faults=self.faults)
        self.statuspage = StatusPage(
            STATUSPAGE_KEY,
            {notes.statuspage_page_id: {notes.statuspage_component_id: self.cfg.application}},
            faults=self.faults,
        )
        self._github_app.app = self.github
        self._statuspage_app.app = self.statuspage

    def _slack_app(self) -> SlackWebhooks:
        notes = self.cfg.notifications
        return SlackWebhooks(
            {
                SLACK_PATHS["team"]: notes.slack_team_channel,
                SLACK_PATHS["company"]: notes.slack_company_channel,
            },
            faults=self.faults,
        )

    def _colour_app(self, colour: str) -> ColourApp:
        return ColourApp(colour, self.version_of, faults=self.faults, **self._api_settings())

    def _api_settings(self) -> dict[str, Any]:
        """What the API needs, whoever serves it: a colour's app or the function invoked directly."""
        return {
            "content_store": DynamoContentStore(
                self.cfg.dynamodb.tables[0], endpoint_url=self.endpoints["aws"], region=self.cfg.region
            ),
            "check_names": {c.path: c.name for c in self.cfg.smoke_tests.checks},
            "users": {SMOKE_ACCOUNT["login"]: SMOKE_ACCOUNT["password"]},
        }

    @property
    def kvs_arn(self) -> str:
        door = self.cfg.traffic.front_door
        return door.key_value_store_arn if door and door.key_value_store_arn else SANDBOX_KVS_ARN

    def _seed_front_door(self) -> None:
        """The front door's KeyValueStore at production's state: the stable colour (blue) at 100 %.

        moto cannot create CloudFront distributions' KeyValueStores from the template, so the
        sandbox's store exists beside the stack (created here, as CloudFormation would), and its
        ARN comes from the configuration; the key is written by the router's own ``seed``.
        """
        self.kvs.reset()
        self.kvs.create(self.kvs_arn)
        seed_front_door(self.cfg, self.endpoints["aws"], self.kvs_arn, STABLE_COLOUR)

    def _front_door(self, function: FunctionRunner) -> FrontDoor:
        from deployment.traffic.front_door import origins

        apps = {domain: self.endpoints[f"app_{colour}"] for colour, domain in origins(self.cfg).items()}
        return FrontDoor(function, self._edge_store, apps, self.endpoints["app_blue"])

    def _edge_store(self) -> dict[str, str]:
        """The store as the front door's edge reads it: late by a ``kvs_propagation`` fault's ``ms``."""
        lagging = self.faults.find("kvs_propagation")
        return self.kvs.snapshot(self.kvs_arn, lag_seconds=float(lagging["ms"]) / 1000 if lagging else 0.0)

    def _seed(self) -> None:
        releases = seed_github(self.cfg, self.github, self.amplify)
        with self.aws.cloudformation.immediate(), self.amplify.immediate():
            seed_aws(self.cfg, self.endpoints["aws"], self.amplify, releases)
        self._seed_front_door()
        if self._traffic_enabled:
            self._start_traffic()

    def _start_traffic(self) -> None:
        through_door = self.traffic_router == "keyvaluestore"
        backend = self.cfg.backend
        self.traffic = TrafficSimulator(
            self.cfg,
            endpoint_url=self.endpoints["aws"],
            version_of=self.version_of,
            faults=self.faults,
            front_door_url=self.endpoints["frontdoor"] if through_door else None,
            function_name=backend.function_name if backend else None,
            alias_name=backend.alias if backend else None,
        )
        self.traffic.start()
