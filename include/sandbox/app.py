"""The application under release: one WSGI app per colour, plus the simulated behaviour of a request.

Entry point (one instance per colour, each served on its own port)::

    ColourApp(colour: str, version_of: Callable[[str], str | None],
              *, faults: Faults | None = None, recorder: Recorder | None = None,
              content_store: ContentStore | None = None,
              check_names: Mapping[str, str] | None = None,
              users: Mapping[str, str] | None = None, seed: int | None = None)

``version_of(colour)`` names the version the colour serves (the Amplify emulator
knows it), read on every request; ``None`` means nothing is deployed and every
request answers 503. ``content_store`` keeps created content: ``MemoryContentStore()``
(the default) or ``DynamoContentStore(table, endpoint_url=..., region=...)`` which
really writes to DynamoDB (the sandbox AWS endpoint), so content creation
fails with 500 when the table is missing. ``check_names`` maps an endpoint path
to the smoke check that calls it (``{c.path: c.name for c in cfg.smoke_tests.checks}``;
default: ``DEFAULT_CHECKS``, the names of ``production.yaml``). ``users`` maps
username to password of the accounts that may sign in (the smoke check sends
the ``app_<colour>`` connection's login/password); ``None`` accepts any
non-empty pair.

Endpoints: ``GET /health`` → 200 ``{status, colour, version}``; ``POST
/api/auth/session`` {username, password} → 200 ``{token}`` (401 for unknown
credentials); ``POST /api/content``
{title, body} → 201 ``{id}``; ``POST /api/ai/generate`` {prompt} → 200
``{completion}``; ``POST /api/payments/intent`` {amount > 0, currency} → 200
``{client_secret}``. Bad input → 400 ``{"error": ...}``, unknown path 404.

Faults (matchers ``version`` and/or ``colour``): ``latency`` adds ``ms`` (a real
sleep) to every request but ``/health`` (with the matcher ``check``, to that smoke check's
endpoint only); ``error_rate`` answers 500 to ``percent`` % of ``/api``
requests (each an independent draw, or with ``spacing: even`` exactly one in ``100/percent``).
``/health`` is spared so the pipeline can still read the version, and the traffic
simulator's viewers, whose page loads through the front door learn their colour there,
keep their one-second ticks under a slow colour;
``stall`` answers 504 to every ``/api`` request (the gateway gave up on a function
that does not answer); ``smoke_failure`` (optional matcher ``check``) answers 500 on
that check's endpoint, or on every check endpoint when it names no check. Every
request is recorded (colour, version, method, path, json with any password masked, status).
What the API does with a request (everything but ``/health``) is :class:`ApiHandler`'s, shared
with the API function's versions when they are invoked directly (``sandbox.lambda_invoke``),
there with the faults matched by ``backend_version`` and ``function_version`` instead.

``simulate_request(faults, colour, version, rng)`` is the same behaviour without
HTTP, for the traffic simulator, which publishes its results per colour: baseline
``BASELINE_ERROR_PERCENT`` errors (each request an independent draw, so counts are
binomial; the simulator spaces them evenly, :class:`EvenlySpaced`) and about
``BASELINE_LATENCY_MS`` latency with Gaussian jitter and a tail of ``SLOW_PERCENT`` %
slow requests (1.5-3 times slower), plus the ``error_rate``,
``latency`` and ``latency_tail`` faults matched by colour, version, ``function_version`` (the
Lambda version that executed the request, when the simulator routes by an alias) or
``backend_version`` (the release that version runs) (``smoke_failure``
only breaks the checked endpoints, not user traffic). ``latency_tail`` makes exactly
``percent`` % of the requests, evenly spaced, ``ms`` slower and the others faster by as much
in all, so the mean stays where it was and only the tail moves (at 2 %, p99 and not p95).
Under ``stall`` a request gets no answer (``None``): the function never ran to the end, so it
published nothing. ``simulate_call`` gives, beside the page's outcome, what the request's API call
did: a fault matched by ``colour`` or ``version`` is the frontend's, and leaves the function's
invocation (Lambda's own metrics) alone.
"""

from __future__ import annotations

import json
import math
import random
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from werkzeug.wrappers import Request, Response

from sandbox.faults import Faults
from sandbox.recorder import Recorder

BASELINE_ERROR_PERCENT = 0.1
BASELINE_LATENCY_MS = 120.0
LATENCY_JITTER_MS = 20.0
SLOW_PERCENT = 1.0
DEFAULT_CHECKS: dict[str, str] = {
    "/api/auth/session": "authentication_flow",
    "/api/content": "content_creation",
    "/api/ai/generate": "ai_service_integration",
    "/api/payments/intent": "payment_processing",
}


Outcome = tuple[int, float]


def one_in_every(seen: int, percent: float) -> bool:
    """Whether the request after ``seen`` others is one of exactly ``percent`` % spaced evenly: one
    request in every ``100/percent``, so any run of requests holds its share and no cluster."""
    return math.floor((seen + 1) * percent / 100) > math.floor(seen * percent / 100)


class EvenlySpaced:
    """Baseline errors as one request in every ``100/percent`` of a stream, not independent draws.

    The traffic simulator's: a canary's poll sees about 32 requests at the 10 % step, and two
    chance errors among them read as a 6 % error rate, which the judge rightly fails (p = 0.04);
    drawn at 0.1 %, that pair came once in about 2,000 polls and failed a healthy release of the
    real-engine tier. Spaced, the environment still errs at ``percent`` %, never twice in a poll.
    """

    def __init__(self, percent: float = BASELINE_ERROR_PERCENT) -> None:
        self.percent = percent
        self.seen = 0

    def __call__(self) -> bool:
        fails = one_in_every(self.seen, self.percent)
        self.seen += 1
        return fails


@dataclass(frozen=True)
class Call:
    """One simulated user request: what the page got (``None``: no answer) and, when the page
    called the API function (``invoked``), what the function's invocation did. The two differ under
    a fault of the frontend (matched by ``colour`` or ``version``): it breaks or slows the page,
    never the function; every other fault is the function's, and reaches both."""

    page: Outcome | None
    invocation: Outcome | None
    invoked: bool


def simulate_request(
    faults: Faults | None,
    colour: str,
    version: str | None,
    rng: random.Random,
    baseline: Callable[[], bool] | None = None,
) -> Outcome | None:
    """The (HTTP status, latency in ms) of one simulated user request to ``colour``; ``None``
    when it got no answer (``stall``)."""
    return simulate_call(faults, colour, version, rng, baseline=baseline).page


def simulate_call(
    faults: Faults | None,
    colour: str,
    version: str | None,
    rng: random.Random,
    function_version: str | None = None,
    backend_version: str | None = None,
    baseline: Callable[[], bool] | None = None,
) -> Call:
    """One simulated user request to ``colour`` (:func:`simulate_request`), with what its API
    call did apart from the page's own faults (:class:`Call`). ``function_version`` is the Lambda
    version that executed it (None: the function's unqualified code) and ``backend_version`` the
    release that version runs, for the faults matched by them. ``baseline`` says whether this
    request is one of the baseline errors (default: an independent draw)."""
    latency = max(rng.gauss(BASELINE_LATENCY_MS, LATENCY_JITTER_MS), 5.0)
    if rng.random() * 100 < SLOW_PERCENT:
        latency *= rng.uniform(1.5, 3.0)
    if version is None:
        return Call((503, latency), None, invoked=False)
    invocation_latency = latency
    failing = failing_backend = None
    if faults is not None:
        backend = {"function_version": function_version, "backend_version": backend_version}
        page = {"colour": colour, "version": version, **backend}
        stalled, stalled_backend = _found(faults, "stall", page, backend)
        if stalled_backend:
            return Call(None, None, invoked=True)
        if stalled:
            return Call(None, None, invoked=False)
        slow, slow_backend = _found(faults, "latency", page, backend)
        if slow:
            latency += float(slow.get("ms", 0))
            invocation_latency += float(slow.get("ms", 0)) if slow_backend else 0.0
        tail, tail_backend = _found(faults, "latency_tail", page, backend)
        if tail:
            percent, ms = float(tail.get("percent", 1)), float(tail.get("ms", 0))
            tailed = _with_tail(latency, percent, ms, faults.tally(tail["id"]))
            invocation_latency += (tailed - latency) if tail_backend else 0.0
            latency = tailed
        failing, failing_backend = _found(faults, "error_rate", page, backend)
        if failing and _fails(failing, faults, rng):
            return Call((500, latency), (500 if failing_backend else 200, invocation_latency), invoked=True)
    failed = baseline() if baseline is not None else rng.random() * 100 < BASELINE_ERROR_PERCENT
    status = 500 if failed else 200
    return Call((status, latency), (status, invocation_latency), invoked=True)


def _found(
    faults: Faults, kind: str, page: dict[str, Any], backend: dict[str, Any]
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The fault of ``kind`` that reaches the page and, when it is the function's (it names no
    frontend matcher), the same fault again: the function's faults are looked up first, so one
    of them wins over a frontend fault of the same kind."""
    function_fault = faults.find(kind, **backend)
    return (function_fault or faults.find(kind, **page)), function_fault


def _fails(fault: dict[str, Any], faults: Faults, rng: random.Random) -> bool:
    """Whether an ``error_rate`` fault fails this request: an independent draw, or with
    ``spacing: even`` exactly one request in every ``100/percent`` (a test of the judge's power at
    a given rate that must not depend on a lucky draw)."""
    percent = float(fault.get("percent", 100))
    if fault.get("spacing", "random") == "even":
        return one_in_every(faults.tally(fault["id"]), percent)
    return rng.random() * 100 < percent


def _with_tail(latency: float, percent: float, ms: float, seen: int) -> float:
    """Exactly ``percent`` % of requests ``ms`` slower, one every ``100/percent`` (``seen``: the
    fault's requests before this one), the rest faster by ``ms·p/(100-p)``: the mean holds, and
    any run of requests holds its share of slow ones, not a chance cluster that moves p95."""
    if one_in_every(seen, percent):
        return latency + ms
    return max(latency - ms * percent / (100 - percent), 1.0)


class ContentStore(Protocol):
    def put(self, item: dict[str, str]) -> None: ...


class MemoryContentStore:
    """Content kept in process memory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, dict[str, str]] = {}

    def put(self, item: dict[str, str]) -> None:
        with self._lock:
            self._items[item["id"]] = dict(item)

    def items(self) -> list[dict[str, str]]:
        with self._lock:
            return [dict(i) for i in self._items.values()]


class DynamoContentStore:
    """Content written to a DynamoDB table; the key attributes are read from the table itself.

    The hash key gets the item id; a range key, if any, the creation time (ISO text
    for type S, epoch milliseconds for N). Other fields are string attributes.
    """

    def __init__(self, table: str, *, endpoint_url: str, region: str, client: Any = None) -> None:
        self.table = table
        self._client = client
        self._endpoint_url = endpoint_url
        self._region = region
        self._keys: list[tuple[str, str, str]] | None = None  # (name, KeyType, AttributeType)
        self._lock = threading.Lock()

    def _connect(self) -> tuple[Any, list[tuple[str, str, str]]]:
        with self._lock:
            if self._client is None:
                import boto3

                self._client = boto3.client(
                    "dynamodb",
                    endpoint_url=self._endpoint_url,
                    region_name=self._region,
                    aws_access_key_id="sandbox",
                    aws_secret_access_key="sandbox",
                )
            if self._keys is None:
                table = self._client.describe_table(TableName=self.table)["Table"]
                types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
                self._keys = [
                    (k["AttributeName"], k["KeyType"], types[k["AttributeName"]]) for k in table["KeySchema"]
                ]
            return self._client, self._keys

    def put(self, item: dict[str, str]) -> None:
        client, keys = self._connect()
        record: dict[str, dict[str, str]] = {k: {"S": str(v)} for k, v in item.items()}
        for name, key_type, attr_type in keys:
            if key_type == "HASH":
                value = item["id"]
            else:
                created = datetime.fromisoformat(item["created_at"])
                value = str(int(created.timestamp() * 1000)) if attr_type == "N" else item["created_at"]
            record[name] = {attr_type: value}
        client.put_item(TableName=self.table, Item=record)


class Stalled(Exception):
    """The request got no answer: the function ran until its timeout (a ``stall`` fault)."""


class Failed(Exception):
    """The function failed on the request (an ``error_rate`` fault)."""


class ApiHandler:
    """What the API does with one request, whoever serves it: a colour's app (:class:`ColourApp`) or
    a version of the API function invoked directly (``sandbox.lambda_invoke``)."""

    def __init__(
        self,
        *,
        faults: Faults | None = None,
        content_store: ContentStore | None = None,
        check_names: Mapping[str, str] | None = None,
        users: Mapping[str, str] | None = None,
        seed: int | None = None,
    ) -> None:
        self.faults = faults or Faults()
        self.content_store = content_store or MemoryContentStore()
        self.check_names = dict(DEFAULT_CHECKS if check_names is None else check_names)
        self.users = None if users is None else dict(users)
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._routes: dict[tuple[str, str], Callable[..., tuple[int, dict[str, Any]]]] = {
            ("POST", "/api/auth/session"): self._session,
            ("POST", "/api/content"): self._content,
            ("POST", "/api/ai/generate"): self._generate,
            ("POST", "/api/payments/intent"): self._payment,
        }

    def answer(
        self, method: str, path: str, body: str, *, release: str, colour: str, context: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        """(status, JSON body) of a request other than ``/health`` to the API of ``release``, with the
        faults matching ``context`` applied; :class:`Stalled` or :class:`Failed` when one of them
        takes the request (the server in front decides what its client sees)."""
        # A latency fault that names a check slows only that check's endpoint, never user traffic.
        slow = self.faults.find("latency", check=self.check_names.get(path), **context)
        if slow:
            time.sleep(float(slow.get("ms", 0)) / 1000)
        route = self._routes.get((method, path))
        if route is None:
            known = {known_path for _, known_path in self._routes} | {"/health"}
            if path in known:
                return 405, {"error": f"method {method} not allowed on {path}"}
            return 404, {"error": f"no such endpoint {path}"}
        if self.faults.find("stall", **context):
            raise Stalled
        failing = self.faults.find("error_rate", **context)
        if failing:
            with self._rng_lock:
                fails = _fails(failing, self.faults, self._rng)
            if fails:
                raise Failed
        check = self.check_names.get(path)
        if check is not None and self.faults.find("smoke_failure", check=check, **context):
            return 500, {"error": f"{check} is broken in {release} (injected smoke_failure)", **context}
        try:
            data = json.loads(body or "null")
        except ValueError:
            return 400, {"error": "the request body is not valid JSON"}
        if not isinstance(data, dict):
            return 400, {"error": "the request body must be a JSON object"}
        return route(data, release=release, colour=colour)

    def _session(self, data: dict[str, Any], **_: str) -> tuple[int, dict[str, Any]]:
        missing = [k for k in ("username", "password") if not isinstance(data.get(k), str) or not data[k]]
        if missing:
            return 400, {"error": f"missing {', '.join(missing)}"}
        if self.users is not None and self.users.get(data["username"]) != data["password"]:
            return 401, {"error": "invalid username or password"}
        return 200, {"token": secrets.token_urlsafe(24), "username": data["username"]}

    def _content(self, data: dict[str, Any], *, release: str, colour: str) -> tuple[int, dict[str, Any]]:
        missing = [k for k in ("title", "body") if not isinstance(data.get(k), str) or not data[k]]
        if missing:
            return 400, {"error": f"missing {', '.join(missing)}"}
        item = {
            "id": str(uuid.uuid4()),
            "title": data["title"],
            "body": data["body"],
            "version": release,
            "colour": colour,
            "created_at": datetime.now(UTC).isoformat(),
        }
        try:
            self.content_store.put(item)
        except Exception as err:  # the store is a dependency: its failure is this endpoint's 500
            return 500, {"error": f"content store unavailable: {err}"}
        return 201, {"id": item["id"]}

    def _generate(self, data: dict[str, Any], **_: str) -> tuple[int, dict[str, Any]]:
        prompt = data.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            return 400, {"error": "missing prompt"}
        return 200, {"completion": f"sandbox completion for: {prompt[:200]}"}

    def _payment(self, data: dict[str, Any], **_: str) -> tuple[int, dict[str, Any]]:
        amount, currency = data.get("amount"), data.get("currency")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            return 400, {"error": "amount must be a positive integer (minor units)"}
        if not isinstance(currency, str) or len(currency) != 3:
            return 400, {"error": "currency must be a three-letter code"}
        intent = f"pi_{secrets.token_hex(12)}"
        return 200, {"id": intent, "client_secret": f"{intent}_secret_{secrets.token_hex(12)}"}


class ColourApp(ApiHandler):
    """The WSGI app serving one colour (blue or green)."""

    def __init__(
        self,
        colour: str,
        version_of: Callable[[str], str | None],
        *,
        recorder: Recorder | None = None,
        **api: Any,
    ) -> None:
        super().__init__(**api)
        self.colour = colour
        self.version_of = version_of
        self.recorder = recorder if recorder is not None else Recorder()

    def __call__(self, environ: dict, start_response: Any) -> Any:
        request = Request(environ)
        version = self.version_of(self.colour)
        raw = request.get_data(as_text=True)
        status, body = self._handle(request.method, request.path, raw, version)
        self.recorder.record(
            colour=self.colour,
            version=version,
            method=request.method,
            path=request.path,
            json=masked_json(raw),
            status=status,
        )
        response = Response(json.dumps(body), status=status, content_type="application/json")
        return response(environ, start_response)

    def _handle(self, method: str, path: str, body: str, version: str | None) -> tuple[int, dict[str, Any]]:
        if version is None:
            return 503, {"error": f"no version is deployed on the {self.colour} branch"}
        context = {"colour": self.colour, "version": version}
        if path == "/health" and method == "GET":
            return 200, {"status": "ok", **context}
        try:
            return self.answer(method, path, body, release=version, colour=self.colour, context=context)
        except Stalled:
            return 504, {"error": "the function did not answer", **context}
        except Failed:
            return 500, {"error": "internal server error", **context}


def masked_json(raw: str) -> Any:
    """A request body as recorded: its JSON, any password masked (the smoke-test account's secret stays
    out of the record); the text when it is not JSON."""
    try:
        payload: Any = json.loads(raw) if raw else None
    except ValueError:
        return raw
    if isinstance(payload, dict) and "password" in payload:
        payload["password"] = "***"
    return payload
