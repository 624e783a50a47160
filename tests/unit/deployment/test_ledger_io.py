"""The deployment record's reads and writes: one S3 request each, on the hook's client."""

from __future__ import annotations

import threading

import pytest


@pytest.fixture
def requests_sent(record):
    """The S3 operations the record's client sends, in order."""
    sent: list[str] = []
    events = record.hook.conn.meta.events
    handler = lambda model, **_: sent.append(model.name)  # noqa: E731
    events.register("before-call.s3", handler)
    yield sent
    events.unregister("before-call.s3", handler)


def test_a_section_is_written_and_read_back_with_one_request_each(record, requests_sent):
    uri = record.write("plan", {"release": {"version": "v1.1.0"}, "steps": [1, 2]})
    assert record.read("plan") == {"release": {"version": "v1.1.0"}, "steps": [1, 2]}
    assert uri == f"s3://{record.bucket}/{record.prefix}/plan.json"
    assert requests_sent == ["PutObject", "GetObject"]


def test_a_write_replaces_the_section_and_keeps_its_json_layout(record, moto):
    record.write("conf", {"b": 1, "a": "é"})
    record.write("conf", {"b": 2, "a": "é"})
    body = moto.client("s3").get_object(Bucket=record.bucket, Key=record.key("conf"))["Body"].read()
    assert body.decode() == '{\n  "a": "\\u00e9",\n  "b": 2\n}'


def test_a_text_artifact_round_trips_and_a_missing_one_raises(record, requests_sent):
    record.write_text("plan", "# Plan\n\n- commit `abc`\n", "md")
    assert record.read_text("plan", "md") == "# Plan\n\n- commit `abc`\n"
    assert requests_sent == ["PutObject", "GetObject"]
    with pytest.raises(record.hook.conn.exceptions.NoSuchKey):
        record.read_text("notes", "md")


def test_the_whole_record_is_one_listing_and_one_get_per_section(record, requests_sent):
    record.write("conf", {"version": "v1.1.0"})
    record.write("plan", {"steps": []})
    record.write_text("plan", "# Plan", "md")
    requests_sent.clear()
    assert record.record() == {"conf": {"version": "v1.1.0"}, "plan": {"steps": []}}
    assert requests_sent == ["ListObjectsV2", "GetObject", "GetObject"]
    assert record.read("missing") is None and record.read("missing", {}) == {}


def test_the_whole_records_sections_are_read_at_once(record):
    sections = {f"step{n}": {"n": n} for n in range(4)}
    for name, value in sections.items():
        record.write(name, value)
    together = threading.Barrier(len(sections), timeout=10)

    def wait_for_the_others(model, **_):
        if model.name == "GetObject":
            try:
                together.wait()
            except threading.BrokenBarrierError:
                pass

    events = record.hook.conn.meta.events
    events.register("before-call.s3", wait_for_the_others)
    try:
        assert record.record() == sections
    finally:
        events.unregister("before-call.s3", wait_for_the_others)
    assert not together.broken  # each GetObject waited for the other three, so none was sent alone


def test_a_pinned_record_keeps_its_hook_and_client_when_the_process_renews_its_hooks(record, monkeypatch):
    from deployment.hooks import aws

    pinned = record.pinned()
    hook, client = pinned.hook, pinned.hook.conn
    monkeypatch.setattr(aws, "HOOK_LIFETIME_SECONDS", -1.0)  # every lookup from now builds a new hook

    assert record.hook is not hook
    assert pinned.hook is hook and pinned.hook.conn is client
    record.write("conf", {"version": "v1.1.0"})
    assert pinned.read("conf") == {"version": "v1.1.0"}
