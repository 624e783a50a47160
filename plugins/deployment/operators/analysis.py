"""Operators that hold a watch on the release's metrics: each traffic step, and the monitoring."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from deployment.judge.verdicts import HEALTHY


class MetricsUnhealthy(AirflowFailException):
    """The metric analysis found a breach, or not enough data to judge.

    It fails the task at once, whatever its retries: those are for a lost worker or an API
    error, and a retry after a breach would send users to the bad version again.
    """


def baseline_rps(ledger: Any) -> float | None:
    """The pre-release request rate the alarms baseline recorded (None if none was seen)."""
    baseline = (ledger.read("infrastructure") or {}).get("traffic_baseline") or {}
    return baseline.get("requests_per_second")


class _MetricWatchOperator(BaseOperator):
    """Defers to a ``MetricWatchTrigger``; subclasses say what to do before and what to record after."""

    template_fields: tuple[str, ...] = ("poll_interval",)

    def __init__(self, *, poll_interval: float | None = None, **kwargs: Any) -> None:
        """
        :param poll_interval: seconds between two analyses of the watch, each judging the window
            since the one before; None: the config's ``timings.poll_interval_seconds``.
        """
        super().__init__(**kwargs)
        self.poll_interval = poll_interval

    def _defer_watch(
        self, rel: Any, *, canary: str, data_since: str | datetime, hold: float, baseline: float | None
    ) -> None:
        """Defer to a watch fixed in absolute time: data from ``data_since`` (rounded up to the metric
        period) for ``hold`` seconds and at least one full poll, decided by an absolute deadline."""
        from deployment.aws.cloudwatch_metrics import MetricQuery
        from deployment.traffic.api_alias import api_versions
        from deployment.traffic.router import other
        from deployment.triggers.analysis import MetricWatchTrigger

        cfg = rel.cfg
        poll = float(self.poll_interval or cfg.timings.poll_interval_seconds)
        since = datetime.fromisoformat(data_since) if isinstance(data_since, str) else data_since
        # CloudWatch rounds a query's StartTime down to its period (the whole minute at 60 s): start
        # the step's data at the next period boundary, so no window reaches back before the change.
        period = cfg.metrics.period_seconds
        since = datetime.fromtimestamp(math.ceil(since.timestamp() / period) * period, UTC)
        hold_until = since + timedelta(seconds=max(float(hold), poll))
        # Room for the polls the extend policy may add, CloudWatch's lag, and API retries.
        extra = poll * (cfg.thresholds.max_insufficient_polls + 2) + cfg.metrics.lag_seconds + 30
        deadline = hold_until + timedelta(seconds=extra)
        api = api_versions(cfg, rel.ledger)
        self.defer(
            trigger=MetricWatchTrigger(
                aws_conn_id=cfg.connections.aws,
                region_name=cfg.region,
                query=MetricQuery.from_config(cfg).to_dict(),
                thresholds=cfg.thresholds.model_dump(mode="json"),
                baseline_rps=baseline,
                poll_interval=poll,
                label=self.task_id,
                canary_colour=canary,
                stable_colour=other(canary),
                data_since=since.isoformat(),
                hold_until=hold_until.isoformat(),
                deadline=deadline.isoformat(),
                ignore_alarms=sorted(rel.emergency.get("ignore_alarms") or []),
                api=api.to_dict() if api is not None else None,
            ),
            method_name="execute_complete",
            timeout=deadline - datetime.now(UTC) + timedelta(seconds=30),
        )

    def _restore_on_breach(self, rel: Any, event: dict[str, Any]) -> dict[str, Any] | None:
        """After a breach, make sure all traffic is on the stable colour: the trigger did it already
        unless its call failed; restoring is idempotent, so doing it again is harmless."""
        from deployment.traffic import router_for
        from deployment.traffic.api_alias import api_versions

        if event.get("status") != "breach":
            return None
        restored = dict(event.get("traffic_restored") or {})
        stable = event.get("stable_colour")
        if stable and (not restored or restored.get("error")):
            change = router_for(rel.cfg, api_versions(rel.cfg, rel.ledger)).restore(stable)
            restored = {
                **restored,
                "colour": stable,
                "by_task_at": datetime.now(UTC).isoformat(),
                "change": change.to_dict() if change is not None else None,
            }
        return restored

    @staticmethod
    def _result(event: dict[str, Any]) -> dict[str, Any]:
        from deployment.ledger import now_iso

        watch = event.get("watch") or {}
        return {
            "outcome": event["status"],
            "reason": event.get("message") or watch.get("reason", ""),
            "finished_at": now_iso(),
            "baseline_rps": event.get("baseline_rps"),
            "canary_colour": event.get("canary_colour"),
            "data_since": event.get("data_since"),
            "hold_until": event.get("hold_until"),
            "deadline": event.get("deadline"),
            "ignore_alarms": event.get("ignore_alarms"),
            "api_errors": event.get("api_errors") or [],
            "publication_waits": event.get("publication_waits") or [],
            "watch": watch,
        }


class TrafficShiftOperator(_MetricWatchOperator):
    """Send ``weight`` % of traffic to the new colour, then watch the metrics for ``hold_seconds``.

    ``hold_seconds`` defaults to the run-time config's step of that weight (``traffic.steps``).
    Every step is judged on at least one full poll of its own: a step held 0 s (production's
    100 % step) holds one poll, whatever the monitoring phase after it does (an emergency flag
    may skip that).

    The watch judges the new colour's own requests against the thresholds and the stable colour,
    on data from after the weights took effect. A breach ends the step at once: the trigger puts
    all traffic back on the stable colour, then the task records that (restoring again if the
    trigger could not) and fails; the rollback group still runs, verifies and records. A step
    already recorded healthy, whose weights Route 53 still has, is not re-applied (after a
    rollback it is); a step whose watch failed is retried
    with its earlier attempt kept under ``previous_attempts``. A retry never puts traffic back on
    the new colour once something took it off within the same attempt (a breach restored by the
    watch whose result was lost with its worker, a cancel): it fails instead
    (:func:`deployment.guards.refuse_step_after_stop`).
    """

    template_fields = ("weight", "hold_seconds", "poll_interval")
    ui_color = "#43aa8b"

    def __init__(self, *, weight: int, hold_seconds: int | None = None, **kwargs: Any) -> None:
        """
        :param weight: the percentage of traffic the step sends to the new colour; the stable colour
            keeps the rest.
        :param hold_seconds: how long the step is watched; None: the hold of the step of that weight
            in the config's ``traffic.steps`` (a weight with no step there fails the task).
        :param poll_interval: as for every watch (``_MetricWatchOperator``).
        """
        super().__init__(**kwargs)
        self.weight = weight
        self.hold_seconds = hold_seconds

    def execute(self, context: Any) -> dict[str, Any] | None:
        from deployment.guards import current_attempt, refuse_step_after_stop
        from deployment.ledger import now_iso
        from deployment.run_context import release, update_section
        from deployment.traffic import router_for
        from deployment.traffic.api_alias import api_versions
        from deployment.traffic.router import other

        rel = release(context)
        weight = int(self.weight)
        hold = self._hold_seconds(rel.cfg)
        frontend = rel.ledger.read("frontend") or {}
        target = frontend.get("target_colour")
        if (
            target not in ("blue", "green")
            or not (frontend.get("amplify_job") or {}).get("status") == "SUCCEED"
        ):
            raise MetricsUnhealthy(
                f"{rel.ledger.uri('frontend')} has no successful build on a target colour: "
                "start_amplify_job must succeed first"
            )
        steps = dict(frontend.get("steps") or {})
        earlier = steps.get(str(weight))
        wanted = {target: weight, other(target): 100 - weight}
        # Held healthy, and Route 53 still says so: a rollback since would have moved traffic back.
        router = router_for(rel.cfg, api_versions(rel.cfg, rel.ledger))
        current = router.weights()
        if earlier and earlier.get("outcome") == HEALTHY and current == wanted:
            self.log.info("Step %s %% is done already (%s): nothing to do", weight, earlier["outcome"])
            self._sync_stack(rel, weight)
            return {"weight": weight, "outcome": earlier["outcome"], "already_done": True}
        attempt = current_attempt(rel.ledger)
        refuse_step_after_stop(earlier, attempt, current, wanted)

        if not frontend.get("traffic_moved"):
            # Recorded before the first weight change: from here on, a failure must restore traffic.
            update_section(rel.ledger, "frontend", traffic_moved=True, traffic_moved_at=now_iso())
        change = router.set_weights(wanted)
        if change is not None:
            # the step's watch judges the new split only once viewers get it
            router.wait_applied(change, timeout=rel.cfg.traffic.apply_timeout_seconds)
        change_id = change.change_id if change else None
        self.log.info("Weights %s (%s)", wanted, f"change {change_id}" if change_id else "already set")
        attempts = list((earlier or {}).get("previous_attempts", []))
        if earlier:
            attempts.append({k: v for k, v in earlier.items() if k != "previous_attempts"})
        steps[str(weight)] = {
            "weight": weight,
            "weights": wanted,
            "hold_seconds": hold,
            "applied_at": change.applied_at if change else now_iso(),
            "change_id": change_id,
            "routing_change": change.to_dict() if change else None,
            "outcome": "watching",
            "attempt": attempt,
            "previous_attempts": attempts,
        }
        update_section(rel.ledger, "frontend", steps=steps)
        self._defer_watch(
            rel,
            canary=target,
            data_since=steps[str(weight)]["applied_at"],
            hold=hold,
            baseline=baseline_rps(rel.ledger),
        )

    def _hold_seconds(self, cfg: Any) -> int:
        if self.hold_seconds is not None:
            return int(self.hold_seconds)
        for step in cfg.traffic.steps:
            if step.weight == int(self.weight):
                return step.hold_seconds
        weights = [s.weight for s in cfg.traffic.steps]
        raise ValueError(f"traffic.steps has no step of weight {self.weight} (steps: {weights})")

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        from deployment.run_context import release, update_section
        from deployment.triggers.events import resumed_event

        event = resumed_event(event, "status")
        rel = release(context)
        weight = int(self.weight)
        frontend = rel.ledger.read("frontend") or {}
        steps = dict(frontend.get("steps") or {})
        result = self._result(event)
        restored = self._restore_on_breach(rel, event)
        if restored is not None:
            result["traffic_restored"] = restored
        steps[str(weight)] = {**steps.get(str(weight), {"weight": weight}), **result}
        completion = _completion(weight, result["outcome"], frontend.get("target_colour"))
        update_section(rel.ledger, "frontend", steps=steps, **completion)
        if result["outcome"] != HEALTHY:
            raise MetricsUnhealthy(f"traffic step {weight} %: {result['outcome']}: {result['reason']}")
        self._sync_stack(rel, weight)
        return {"weight": weight, "outcome": HEALTHY}

    def _sync_stack(self, rel: Any, weight: int) -> None:
        """After the 100 % step, the stack takes the API version now live (``traffic.api_stack``):
        deferred while CloudFormation updates, or recorded at once when the stack names it already."""
        import hashlib

        from deployment.run_context import update_section
        from deployment.traffic.api_alias import api_versions
        from deployment.traffic.api_stack import start_sync
        from deployment.triggers.cloudformation import StackUpdateTrigger

        api = api_versions(rel.cfg, rel.ledger) if weight == 100 else None
        if api is None:
            return
        token = "sync-" + hashlib.sha256(f"{rel.run_key}/{api.new}".encode()).hexdigest()[:40]
        started = start_sync(rel.cfg, api.new, token)
        if started is None:
            self._record_sync(rel, {"version": api.new, "status": "in_sync_already"})
            return
        update_section(rel.ledger, "frontend", api_stack_sync={**started, "status": "UPDATING"})
        timeout = rel.cfg.timings.stack_timeout_seconds
        poll = float(rel.cfg.timings.status_poll_seconds)
        self.defer(
            trigger=StackUpdateTrigger(
                stack_name=rel.cfg.stack.name,
                aws_conn_id=rel.cfg.connections.aws,
                region_name=rel.cfg.region,
                poll_interval=poll,
                deadline=time.time() + timeout,
                since=started["started_at"],
            ),
            method_name="sync_complete",
            timeout=timedelta(seconds=timeout + 5 * poll),
        )

    def sync_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        from deployment.run_context import release
        from deployment.triggers.events import resumed_event

        event = resumed_event(event, "status")
        rel = release(context)
        synced = (rel.ledger.read("frontend") or {}).get("api_stack_sync") or {}
        status = {"status": event.get("stack_status"), "error": event.get("message")}
        if event["status"] != "success":
            self._record_sync(rel, {**synced, **status}, drift=False)
            raise MetricsUnhealthy(
                f"the stack could not take the live API version {synced.get('version')}: "
                f"{event.get('message')}"
            )
        self._record_sync(rel, {**synced, **status})
        return {"weight": int(self.weight), "outcome": HEALTHY}

    def _record_sync(self, rel: Any, synced: dict[str, Any], *, drift: bool = True) -> None:
        """Record the sync with the alias's drift as CloudFormation detects it now."""
        from deployment.ledger import now_iso
        from deployment.run_context import update_section
        from deployment.traffic.api_stack import alias_drift

        if drift:
            try:
                synced["drift"] = alias_drift(rel.cfg)
            except Exception as err:  # drift is evidence, not a gate: a healthy release stays released
                synced["drift"] = {"status": "UNKNOWN", "reason": f"{type(err).__name__}: {err}"}
            self.log.info("API alias drift after the sync: %s", synced["drift"])
        update_section(rel.ledger, "frontend", api_stack_sync={**synced, "finished_at": now_iso()})


def _completion(weight: int, outcome: str, target: str | None) -> dict[str, Any]:
    """The frontend section's fields once the 100 % step is done: the release's colour is live."""
    if weight == 100 and outcome == HEALTHY:
        return {"completed": True, "live_colour_after": target}
    return {}


class MonitorReleaseOperator(_MetricWatchOperator):
    """Watch production for ``timings.monitoring_seconds`` after the release; ``skip_monitoring`` skips it.

    A skip is written to the ``monitoring`` section with its reason, announced to the team
    channel (once per run), logged, and ends the task skipped (``AirflowSkipException``), so the
    grid shows a watch that watched nothing as skipped, not green. The Task SDK gives a task no
    way to set its own note; the reason is in the log and the record.
    """

    ui_color = "#577590"

    def execute(self, context: Any) -> dict[str, Any] | None:
        from deployment.ledger import now_iso
        from deployment.run_context import release

        rel = release(context)
        cfg = rel.cfg
        existing = rel.ledger.read("monitoring") or {}
        flags = rel.emergency
        if flags["skip_monitoring"]:
            announced = bool(existing.get("announced"))
            if not announced:
                from deployment.notifications.announce import announce_team
                from deployment.notifications.base import slack_escape

                try:
                    announce_team(
                        cfg,
                        f":warning: {cfg.application} {rel.version}: post-deployment monitoring SKIPPED "
                        f"(emergency, run {rel.run_id}). Reason: {slack_escape(flags['reason'])}",
                    )
                    announced = True
                except Exception as err:  # a notice never fails (and so rolls back) a healthy release
                    self.log.warning("could not announce the skipped monitoring: %s", err)
            rel.ledger.write(
                "monitoring",
                {
                    "skipped": True,
                    "reason": flags["reason"],
                    "announced": announced,
                    "skipped_at": existing.get("skipped_at") or now_iso(),
                },
            )
            self.log.warning("Monitoring skipped by emergency flag: %s", flags["reason"])
            raise AirflowSkipException(f"monitoring skipped by emergency.skip_monitoring: {flags['reason']}")
        if existing.get("outcome") == HEALTHY:
            self.log.info("Monitoring already completed healthy for this run: nothing to do")
            return {"outcome": HEALTHY, "already_done": True}
        previous = list(existing.get("previous_attempts", []))
        if existing:
            previous.append({k: v for k, v in existing.items() if k != "previous_attempts"})
        started_at = now_iso()
        # Monitoring reads the release's colour (the 100 % step made it the live one).
        colour = (rel.ledger.read("frontend") or {}).get("target_colour")
        if colour not in ("blue", "green"):
            from deployment.traffic import router_for

            colour = router_for(cfg).live_colour()
        rel.ledger.write(
            "monitoring",
            {
                "skipped": False,
                "started_at": started_at,
                "colour": colour,
                "duration_seconds": cfg.timings.monitoring_seconds,
                "outcome": "watching",
                "previous_attempts": previous,
            },
        )
        self._defer_watch(
            rel,
            canary=colour,
            data_since=started_at,
            hold=cfg.timings.monitoring_seconds,
            baseline=baseline_rps(rel.ledger),
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        from deployment.run_context import release, update_section
        from deployment.triggers.events import resumed_event

        event = resumed_event(event, "status")
        rel = release(context)
        result = self._result(event)
        restored = self._restore_on_breach(rel, event)
        if restored is not None:
            result["traffic_restored"] = restored
        update_section(rel.ledger, "monitoring", **result)
        if result["outcome"] != HEALTHY:
            raise MetricsUnhealthy(f"post-deployment monitoring: {result['outcome']}: {result['reason']}")
        return {"outcome": HEALTHY}
