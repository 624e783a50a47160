"""What the approvers read about the API canary: canaried from the alias's version, or why not."""

from __future__ import annotations

from deployment.config import load_config
from deployment.gate.plan import api_canary, render_markdown
from tests.unit.deployment.gate.test_plan import _change_set, _plan

CFG = load_config("production")
COMPATIBLE = {"compatible": True, "reasons": []}


def test_the_plan_names_the_version_the_alias_stays_on():
    api = api_canary(CFG, {"parameters": {"LiveVersion": "7"}}, COMPATIBLE)
    assert api["canaried"] is True and api["from_version"] == "7"
    assert "stays on version 7" in api["detail"] and "smoke checks by qualifier" in api["detail"]


def test_a_build_without_the_parameter_or_the_alias_is_not_canaried_and_says_so():
    old_build = api_canary(CFG, {"parameters": {"AppVersion": "v1.1.0"}}, COMPATIBLE)
    assert (
        old_build["canaried"] is False
        and "every API request with the new code at once" in old_build["detail"]
    )
    adopting = api_canary(CFG, {"parameters": {"LiveVersion": ""}}, COMPATIBLE)
    assert adopting["canaried"] is False and "does not exist yet" in adopting["detail"]


def test_an_incompatible_data_change_is_not_undone_by_the_alias():
    api = api_canary(CFG, {"parameters": {"LiveVersion": "7"}}, {"compatible": False, "reasons": ["x"]})
    assert "not undone by moving the alias back" in api["detail"]


def test_the_approvers_read_it_in_the_plan():
    change_set = {**_change_set(), "parameters": {"LiveVersion": "7"}}
    markdown = render_markdown(_plan(CFG, change_set=change_set))
    assert "## API canary\n" in markdown and "stays on version 7" in markdown
