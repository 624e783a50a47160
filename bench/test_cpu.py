"""cpu.py: a process tree's CPU includes the children it reaped; usage is the difference of two snapshots."""

from __future__ import annotations

import os
import subprocess
import sys

import cpu

BURN = "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass\n"


def test_a_child_that_ended_is_counted_in_the_parent_that_reaped_it():
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys, time; subprocess.run([sys.executable, '-c', {BURN!r}]); "
            "print('reaped', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout.readline().strip() == "reaped"
        assert cpu.tree_seconds(parent.pid) >= 0.5
    finally:
        parent.kill()
        parent.wait()


def test_a_process_that_is_gone_counts_nothing():
    assert cpu.tree_seconds(2**22 + 12345) == 0.0


def test_usage_is_the_difference_of_two_snapshots():
    before = {"scheduler": 10.0, "postgres": 5.0, "machine busy": 100.0, "machine total": 400.0}
    after = {"scheduler": 40.0, "postgres": 15.0, "machine busy": 160.0, "machine total": 520.0}
    used = cpu.usage(before, after, 60.04)
    assert used["seconds"] == {"scheduler": 30.0, "postgres": 10.0}
    assert used["machine_busy_seconds"] == 60.0
    assert used["machine_busy_share"] == 0.5
    assert used["other_seconds"] == 20.0
    assert used["wall_seconds"] == 60.0
    assert used["cores"] == os.cpu_count()
