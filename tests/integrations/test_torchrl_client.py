"""tools/torchrl_client: TorchRL's own dqn_atari.py with dqnfast's buffer swapped in.

The patch must apply to TorchRL's files at the pinned commit and change only the replay-buffer block
and the pixel normalisation. The slow test runs both variants through the tool on Breakout for a few
hundred steps.

TorchRL's files are not part of this repository: the tests read them from a TorchRL git checkout,
$DQNFAST_TORCHRL_CHECKOUT or the mirror at /work/.mirror/pytorch+rl/repo, and skip when neither
holds the pinned commit (CI has none).
"""
from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
import warnings
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
VECNORM_BLOCK = "<the VecNorm block>"
ADDED = [
    "from dqnfast.torchrl_buffer import DqnfastTensorDictReplayBuffer",
    "replay_buffer = DqnfastTensorDictReplayBuffer(",
    "cfg.buffer.buffer_size, stack=4, batch_size=cfg.buffer.batch_size",
    "Transform,",
    "env.append_transform(ToTensorImage(from_int=False, dtype=torch.uint8))",
    "if not is_test:",
    "env.append_transform(PixelStatsUpdate())",
    VECNORM_BLOCK,
    "module=torch.nn.Sequential(PixelStatsNorm(), cnn, mlp),",
]
# The block that moves VecNorm: it starts with this comment and defines only these names (checked
# on the patched file below); test_moved_vecnorm_is_torchrls_vecnorm checks what it computes.
VECNORM_COMMENT = "# VecNorm, moved:"
VECNORM_NAMES = {"PixelStats", "PIXEL_STATS", "PixelStatsUpdate", "PixelStatsNorm"}


def _added_and_removed():
    removed, added, files = [], [], []
    for line in tool.PATCH.read_text().splitlines():
        if line.startswith("+++ "):
            files.append(line[4:])
        elif line.startswith("-") and not line.startswith("--- "):
            removed.append(line[1:].strip())
        elif line.startswith("+"):
            added.append(line[1:].strip())
    # the VecNorm block runs from its comment to the blank lines before the model's change
    start = next(i for i, line in enumerate(added) if line.startswith(VECNORM_COMMENT))
    end = added.index("module=torch.nn.Sequential(PixelStatsNorm(), cnn, mlp),")
    return files, removed, added[:start] + [VECNORM_BLOCK] + added[end:]


def test_patch_touches_only_the_buffer_block_and_the_normalisation():
    files, removed, added = _added_and_removed()
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
    added_names = _top_level_names(patched / "utils_atari.py") - _top_level_names(original / "utils_atari.py")
    assert added_names == VECNORM_NAMES


def _top_level_names(path: Path) -> set:
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def test_moved_vecnorm_is_torchrls_vecnorm(tmp_path):
    """The patched model standardises uint8 pixels with exactly the moments and output of TorchRL's
    VecNorm (the class the script used: decay 0.9999, eps 1e-4) fed the same pixels as [0, 1]
    floats, over single steps and batched steps."""
    files = tool.read_torchrl_files(_checkout(), tool.PINNED_COMMIT)
    pytest.importorskip("torchrl", reason="the patched utils_atari.py imports torchrl")
    import torch
    from tensordict import TensorDict
    from torchrl.envs.transforms import VecNorm

    patched = tool.lay_out(tmp_path / "patched", files, patched=True)
    spec = importlib.util.spec_from_file_location("patched_utils_atari", patched / "utils_atari.py")
    utils_atari = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils_atari)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # VecNorm's own deprecation notice
        reference = VecNorm(in_keys=["pixels"])
    update = utils_atari.PixelStatsUpdate()
    layer = utils_atari.PixelStatsNorm()
    generator = torch.Generator().manual_seed(5)
    for step in range(40):
        batch = [3] if step % 4 == 1 else []  # a batched env's step, or one env's
        pixels = torch.randint(0, 256, (*batch, 4, 84, 84), dtype=torch.uint8, generator=generator)
        expected = reference._call(TensorDict({"pixels": pixels.float() / 255}, batch_size=batch))["pixels"]
        if step == 0:
            stepped = update._reset(None, TensorDict({"pixels": pixels}, batch_size=batch))
        else:
            stepped = update._call(TensorDict({"pixels": pixels}, batch_size=batch))
        assert stepped["pixels"].dtype == torch.uint8  # the env's pixels stay bytes for the buffer
        assert torch.equal(layer(pixels), expected)


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
    # The moved VecNorm saw each frame of the training env once: 2,000 steps and a reset per game
    # (random Breakout games last about 180 steps), so its count, decayed by 0.9999 a frame, is that
    # of 2,000 to 2,200 frames. The layer never updates it from sampled batches.
    assert "pixel_stats_count" not in results["original"]

    def decayed(frames):
        return (1 - 0.9999 ** frames) / (1 - 0.9999)

    assert decayed(2_000) <= results["dqnfast"]["pixel_stats_count"] <= decayed(2_200)
    assert not list(tmp_path.glob("torchrl_client_*"))  # the work folder and its memmap files are removed
