"""tools/device_check.py --smoke: the GPU machine's one-shot check runs its steps on CPU, so it cannot rot
between the sessions that are lent a GPU."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.tool_scripts import load_tool

pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_device_check_smoke_runs_every_step_on_cpu(tmp_path):
    out = tmp_path / "check.json"
    import dqnfast  # the dqnfast under test (installed in CI, an in-place build in a checkout)
    where = os.path.dirname(os.path.dirname(dqnfast.__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (where, os.environ.get("PYTHONPATH")) if p))
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "device_check.py"), "--smoke", "--no-build",
                        "--json", str(out)], capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    result = json.loads(out.read_text())
    steps = result["steps"]
    assert set(steps) >= {"machine", "cuda_tests", "update_step", "replay_sample", "data_path", "train"}
    assert not [n for n, s in steps.items() if s["status"].startswith("failed")], steps
    figures = {(row["step"], row["figure"]): row["value"] for row in result["rows"]}
    assert figures[("cuda_tests", "failed")] == 0 and figures[("cuda_tests", "skipped")] > 0
    times = [v for (step, fig), v in figures.items() if step == "update_step" and isinstance(v, float)]
    assert len(times) == 2 and all(t > 0 for t in times)  # eager and compiled (no CUDA graph on CPU)
    assert all(v > 0 for (step, _), v in figures.items() if step == "replay_sample")
    if importlib.util.find_spec("ale_py") and importlib.util.find_spec("gymnasium"):
        assert steps["data_path"]["status"] == steps["train"]["status"] == "ok"
        rates = [v for (step, _), v in figures.items() if step == "data_path"]
        assert len(rates) == 2 and all(r > 0 for r in rates)  # 1 and 2 workers
        assert figures[("train", "agent steps in the time box")] > 0
        assert ("train", "evaluation, 1 real games") in figures
    assert result["table"] in r.stdout  # the table printed at the end is the one written
    assert result["complete"] is True


def _device_check_module():
    return load_tool("device_check")


def test_each_finished_step_is_on_disk_before_the_next_starts(tmp_path):
    """A machine lost mid-check still returns the finished steps: what the second step finds on disk."""
    check = _device_check_module().Check(smoke=True, json_path=tmp_path / "check.json")
    seen = {}

    def first(c):
        c.row("first", "figure", 1.5, "s")

    def second(c):
        seen.update(json.loads((tmp_path / "check.json").read_text()))
        raise RuntimeError("the machine went away")

    check.run("first", first)
    check.run("second", second)
    assert seen["complete"] is False and list(seen["steps"]) == ["first"]
    assert seen["rows"] == [{"step": "first", "figure": "figure", "value": 1.5, "unit": "s", "note": ""}]
    after = json.loads((tmp_path / "check.json").read_text())
    assert after["steps"]["second"]["status"].startswith("failed: RuntimeError")


@pytest.mark.slow
def test_steps_runs_only_the_named_steps_and_rejects_unknown_ones(tmp_path):
    out = tmp_path / "check.json"
    tool = [sys.executable, str(ROOT / "tools" / "device_check.py"), "--smoke", "--json", str(out)]
    r = subprocess.run(tool + ["--no-build", "--steps", "machine"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    result = json.loads(out.read_text())
    assert list(result["steps"]) == ["machine"] and result["complete"] is True
    assert {row["step"] for row in result["rows"]} == {"machine", "total"}
    r = subprocess.run(tool + ["--steps", "machine,warp"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "unknown step(s) warp" in r.stderr
