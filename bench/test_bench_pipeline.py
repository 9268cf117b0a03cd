"""Benchmark: the DQN data path (env + preprocess + replay add + sample) against raw ALE and CleanRL-style.

Not part of the default test run (testpaths = tests). Run with
``PYTHONPATH=python python -m pytest bench/test_bench_pipeline.py -s`` (prints the table), or use
``dqnfast bench pipeline`` directly. The ratio goal (dqnfast at most 10% slower per step than raw
ALE emulation, each path against a replay of its own emulator calls) is reported, and asserted only with DQNFAST_BENCH_STRICT=1, because timings on a
shared CI machine are not a pass/fail signal.
"""
from __future__ import annotations

import os

import pytest

pytest.importorskip("gymnasium")
pytest.importorskip("ale_py")
pytest.importorskip("dqnfast.wrappers")

from dqnfast.benchmarks import pipeline as pipeline_bench  # noqa: E402


def test_pipeline_table(capsys):
    assert pipeline_bench.main(["--steps", "1500", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    print(out)
    assert "raw ALE" in out and "dqnfast" in out and "CleanRL-style" in out


def test_pipeline_ratios():
    res = pipeline_bench.run(steps=2000, repeats=3)
    ratio = res["time_per_step_over_raw_ale"]
    print(res)
    assert ratio["raw_ale"] == 1.0
    assert ratio["dqnfast"] > 1.0 and ratio["cleanrl_numpy"] > 1.0  # both do more work than the emulator
    assert ratio["dqnfast_threaded"] > 1.0 and res["emulated_frames_per_step"]["dqnfast"] >= 4
    if os.environ.get("DQNFAST_BENCH_STRICT") == "1":
        assert ratio["dqnfast"] <= 1.10, f"dqnfast data path costs {ratio['dqnfast']:.2f}x raw ALE (goal <= 1.10x)"
        assert res["dqnfast_speedup_over_cleanrl_numpy"] > 1.0


def test_bad_arguments_are_refused(capsys):
    with pytest.raises(SystemExit):
        pipeline_bench.main(["--steps", "-1"])
    assert "--steps must be positive" in capsys.readouterr().err
