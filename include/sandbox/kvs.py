"""The CloudFront KeyValueStore data-plane API (``cloudfront-keyvaluestore``), in memory.

Enough for boto3's ``cloudfront-keyvaluestore`` client, unchanged: DescribeKeyValueStore,
GetKey, ListKeys, PutKey, DeleteKey and UpdateKeys (REST-JSON under
``/key-value-stores/{KvsARN}``). Every write names the store's current ETag in
``If-Match`` and gets the new one back in the ``ETag`` header; a stale ETag is a
409 ConflictException, as on AWS. boto3 signs these calls with SigV4A (it needs
``awscrt``); the sandbox's AWS front routes them here by the credential scope's
service, and nothing checks signatures.

The store is also read directly (``snapshot``) by the sandbox's front door, as
CloudFront's edge reads its copy of the store. AWS propagates a write to the edges within
seconds, not at once: ``snapshot(arn, lag_seconds=...)`` reads the store as it was that long ago
(the ``kvs_propagation`` fault), from the last ``HISTORY`` versions it keeps.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

PREFIX = "/key-value-stores/"
HISTORY = 64


class KvsError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class _Store:
    def __init__(self, arn: str) -> None:
        self.arn = arn
        self.items: dict[str, str] = {}
        self.etag = uuid.uuid4().hex
        self.created = self.modified = datetime.now(UTC)
        # (monotonic time of the write, the items after it), oldest first
        self.versions: deque[tuple[float, dict[str, str]]] = deque([(time.monotonic(), {})], maxlen=HISTORY)

    def size(self) -> int:
        return sum(len(k.encode()) + len(v.encode()) for k, v in self.items.items())

    def touch(self) -> None:
        """A write: a new ETag and modification time, and the items as they now are kept."""
        self.etag = uuid.uuid4().hex
        self.modified = datetime.now(UTC)
        self.versions.append((time.monotonic(), dict(self.items)))

    def as_of(self, seconds_ago: float) -> dict[str, str]:
        """The items as they were ``seconds_ago`` (the oldest kept version when the store is younger)."""
        cutoff = time.monotonic() - seconds_ago
        seen = self.versions[0][1]
        for written, items in self.versions:
            if written > cutoff:
                break
            seen = items
        return dict(seen)

    def counts(self) -> dict[str, Any]:
        return {"ItemCount": len(self.items), "TotalSizeInBytes": self.size()}


class KeyValueStoreEmulator:
    """WSGI app; stores are created by ``create`` (the sandbox's seed), as CloudFormation would."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stores: dict[str, _Store] = {}

    def create(self, arn: str) -> str:
        with self._lock:
            self._stores[arn] = _Store(arn)
        return arn

    def put(self, arn: str, key: str, value: str) -> None:
        """Write one key as the store's creator would (CloudFormation's import, the seed)."""
        with self._lock:
            store = self._stores[arn]
            store.items[key] = value
            store.touch()

    def delete(self, arn: str, key: str) -> None:
        """Remove one key as a hand edit would (what the front door does without it is under test)."""
        with self._lock:
            store = self._stores[arn]
            del store.items[key]
            store.touch()

    def reset(self) -> None:
        with self._lock:
            self._stores.clear()

    def snapshot(self, arn: str, lag_seconds: float = 0.0) -> dict[str, str]:
        """The store's items as an edge reads them ``lag_seconds`` after they were written; empty
        when the store does not exist."""
        with self._lock:
            store = self._stores.get(arn)
            if store is None:
                return {}
            return store.as_of(lag_seconds) if lag_seconds > 0 else dict(store.items)

    # ------------------------------------------------------------------ WSGI
    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        try:
            status, headers, body = self._dispatch(environ)
        except KvsError as err:
            status = err.status
            headers = {"x-amzn-ErrorType": err.code}
            body = {"message": err.message}
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict"}
        start_response(
            f"{status} {reason.get(status, 'Error')}",
            [("Content-Type", "application/json"), *headers.items()],
        )
        return [json.dumps(body, default=str).encode()]

    def _dispatch(self, environ: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
        raw = environ.get("REQUEST_URI") or environ.get("RAW_URI") or environ.get("PATH_INFO", "")
        path = urlsplit(raw).path  # absolute-form when the client came through a proxy
        if not path.startswith(PREFIX):
            raise KvsError(404, "ResourceNotFoundException", f"no such path {path}")
        parts = path[len(PREFIX) :].split("/")  # the ARN arrives percent-encoded, one segment
        arn = unquote(parts[0])
        method = environ["REQUEST_METHOD"]
        query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        if_match = environ.get("HTTP_IF_MATCH")
        with self._lock:
            store = self._stores.get(arn)
            if store is None:
                raise KvsError(404, "ResourceNotFoundException", f"key value store {arn} not found")
            if len(parts) == 1 and method == "GET":
                return self._describe(store)
            if len(parts) == 2 and parts[1] == "keys":
                if method == "GET":
                    return self._list(store, query)
                if method == "POST":
                    return self._update(store, if_match, _body(environ))
            if len(parts) == 3 and parts[1] == "keys":
                key = unquote(parts[2])
                if method == "GET":
                    return self._get(store, key)
                if method == "PUT":
                    return self._update(store, if_match, {"Puts": [{"Key": key, **_body(environ)}]})
                if method == "DELETE":
                    if key not in store.items:
                        raise KvsError(404, "ResourceNotFoundException", f"key {key} not found")
                    return self._update(store, if_match, {"Deletes": [{"Key": key}]})
        raise KvsError(405, "ValidationException", f"{method} {path} is not a KeyValueStore action")

    @staticmethod
    def _describe(store: _Store) -> tuple[int, dict[str, str], dict[str, Any]]:
        body = {
            **store.counts(),
            "KvsARN": store.arn,
            "Created": store.created.timestamp(),
            "LastModified": store.modified.timestamp(),
            "Status": "READY",
        }
        return 200, {"ETag": store.etag}, body

    @staticmethod
    def _get(store: _Store, key: str) -> tuple[int, dict[str, str], dict[str, Any]]:
        if key not in store.items:
            raise KvsError(404, "ResourceNotFoundException", f"key {key} not found")
        return 200, {}, {"Key": key, "Value": store.items[key], **store.counts()}

    @staticmethod
    def _list(store: _Store, query: dict[str, str]) -> tuple[int, dict[str, str], dict[str, Any]]:
        keys = sorted(store.items)
        start = int(query.get("NextToken") or 0)
        size = int(query.get("MaxResults") or 50)
        page = keys[start : start + size]
        body: dict[str, Any] = {"Items": [{"Key": k, "Value": store.items[k]} for k in page]}
        if start + size < len(keys):
            body["NextToken"] = str(start + size)
        return 200, {}, body

    @staticmethod
    def _update(
        store: _Store, if_match: str | None, change: dict[str, Any]
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        if not if_match:
            raise KvsError(400, "ValidationException", "If-Match is required")
        if if_match != store.etag:
            raise KvsError(409, "ConflictException", f"ETag {if_match} is not the store's current one")
        puts, deletes = change.get("Puts") or [], change.get("Deletes") or []
        for put in puts:
            if not isinstance(put.get("Value"), str) or len(put["Value"].encode()) > 1024:
                raise KvsError(400, "ValidationException", f"bad value for key {put.get('Key')}")
        for put in puts:
            store.items[put["Key"]] = put["Value"]
        for delete in deletes:
            store.items.pop(delete["Key"], None)
        store.touch()
        return 200, {"ETag": store.etag}, store.counts()


def _body(environ: dict[str, Any]) -> dict[str, Any]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    return json.loads(raw) if raw else {}
