"""tools/torchrl_client: TorchRL's own dqn_atari.py with dqnfast's buffer swapped in.

The patch must apply to TorchRL's files at the pinned commit and change only the replay-buffer block
and the pixel normalisation. The slow test runs both variants through the tool on Breakout for a few
hundred steps.

TorchRL's files are not part of this repository: the tests read them from a TorchRL git checkout,
$DQNFAST_TORCHRL_CHECKOUT or the mirror at /work/.mirror/pytorch+rl/repo, and skip when neither
holds the pinned commit (CI has none).
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "torchrl_client" / "run.py"


def _load_tool():
    spec = importlib.util.spec_from_file_location("torchrl_client_run", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


tool = _load_tool()


def _checkout() -> Path:
    path = Path(os.environ.get("DQNFAST_TORCHRL_CHECKOUT", "/work/.mirror/pytorch+rl/repo"))
    if not path.exists():
        pytest.skip(f"no TorchRL checkout at {path} (set DQNFAST_TORCHRL_CHECKOUT to a pytorch/rl clone)")
    found = subprocess.run(["git", "-C", str(path), "cat-file", "-e", f"{tool.PINNED_COMMIT}^{{commit}}"],
                           capture_output=True)
    if found.returncode != 0:
        pytest.skip(f"the TorchRL checkout at {path} lacks commit {tool.PINNED_COMMIT[:10]}")
    return path


# What the patch may remove and add, line by line (whitespace stripped), and nothing else.
REMOVED = [
    "from torchrl.data import LazyMemmapStorage, TensorDictReplayBuffer",
    'if cfg.buffer.scratch_dir in ("", None):',
    "storage_cls = LazyMemmapStorage",
    "else:",
    "storage_cls = functools.partial(",
    "LazyMemmapStorage, scratch_dir=cfg.buffer.scratch_dir",
    ")",
    "",
    "replay_buffer = TensorDictReplayBuffer(",
    "pin_memory=False,",
    "storage=storage_cls(",
    "max_size=cfg.buffer.buffer_size,",
    "),",
    "batch_size=cfg.buffer.batch_size,",
    "env.append_transform(ToTensorImage())",
    'env.append_transform(VecNorm(in_keys=["pixels"]))',
    "module=torch.nn.Sequential(cnn, mlp),",
]
ADDED = [
    "from dqnfast.torchrl_buffer import DqnfastTensorDictReplayBuffer",
    "replay_buffer = DqnfastTensorDictReplayBuffer(",
    "cfg.buffer.buffer_size, stack=4, batch_size=cfg.buffer.batch_size",
    "env.append_transform(ToTensorImage(from_int=False, dtype=torch.uint8))",
    "class PixelScale(torch.nn.Module):",
    "def forward(self, pixels):",
    "return pixels.float() / 255",
    "",
    "",
    "module=torch.nn.Sequential(PixelScale(), cnn, mlp),",
]


def test_patch_touches_only_the_buffer_block_and_the_normalisation():
    removed, added, files = [], [], []
    for line in tool.PATCH.read_text().splitlines():
        if line.startswith("+++ "):
            files.append(line[4:])
        elif line.startswith("-") and not line.startswith("--- "):
            removed.append(line[1:].strip())
        elif line.startswith("+"):
            added.append(line[1:].strip())
    assert files == ["b/sota-implementations/dqn/dqn_atari.py", "b/sota-implementations/dqn/utils_atari.py"]
    assert removed == REMOVED
    assert added == ADDED


def test_the_docs_show_the_patch_as_it_is():
    assert tool.PATCH.read_text() in (ROOT / "docs" / "integrations.md").read_text()


def test_patch_applies_to_the_pinned_torchrl_files(tmp_path):
    files = tool.read_torchrl_files(_checkout(), tool.PINNED_COMMIT)
    original = tool.lay_out(tmp_path / "original", files, patched=False)
    patched = tool.lay_out(tmp_path / "patched", files, patched=True)  # git apply raises if it does not fit
    assert (original / "config_atari.yaml").read_bytes() == (patched / "config_atari.yaml").read_bytes()
    for name in ("dqn_atari.py", "utils_atari.py"):
        assert (original / name).read_bytes() == files[name]
        assert (patched / name).read_bytes() != files[name]
    text = (patched / "dqn_atari.py").read_text()
    assert "LazyMemmapStorage" not in text and "DqnfastTensorDictReplayBuffer(" in text


@pytest.mark.slow
def test_both_variants_run_on_breakout(tmp_path):
    checkout = _checkout()
    for module in ("torchrl", "torchvision", "hydra", "ale_py"):
        probe = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
        if probe.returncode != 0:  # (PyPI's torchvision does not import beside torch's CPU build)
            pytest.skip(f"TorchRL's dqn_atari.py needs {module}, which does not import here: "
                        f"{probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else probe.returncode}")
    out = tmp_path / "figures.json"
    # 2,000 agent steps in 5 collector batches of 400, 5 updates after each: the script compares the
    # emulator frames it collected with init_random_frames / 4, so it learns from the first batch on
    # (while the collector acts at random for 1,200 steps). It evaluates when total_frames / 4 is one
    # batch, so total_frames stays above 6,400.
    subprocess.run([sys.executable, str(TOOL), "--torchrl", str(checkout), "--total-frames", "8000",
                    "--init-random-frames", "4800", "--buffer-size", "1000", "--override", "loss.num_updates=5",
                    "--workdir", str(tmp_path), "--json", str(out)],
                   check=True, env=dict(os.environ, PYTHONPATH=str(ROOT / "python")), timeout=1500)
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"original", "dqnfast"}
    for r in results.values():
        assert r["phases"]["update"][1] == 25
        assert r["maxrss_kb"] > 0
    (orig,), (ours,) = results["original"]["buffers"], results["dqnfast"]["buffers"]
    assert orig["type"] == "TensorDictReplayBuffer" and orig["len"] == 1000
    assert orig["entries"]["pixels"][1:] == ["torch.float32", 1000 * 4 * 84 * 84 * 4]
    assert results["original"]["disk"]["allocated"] >= orig["nbytes"] * 0.9
    assert ours["type"] == "DqnfastTensorDictReplayBuffer" and 900 <= ours["len"] <= 1000
    assert ours["nbytes"] < orig["nbytes"] / 20
    assert not list(tmp_path.glob("torchrl_client_*"))  # the work folder and its memmap files are removed
