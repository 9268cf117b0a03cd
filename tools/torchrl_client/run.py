"""Run TorchRL's own DQN Atari script twice, as TorchRL ships it and with dqnfast's replay buffer.

TorchRL's ``sota-implementations/dqn/dqn_atari.py`` (with its ``utils_atari.py`` and
``config_atari.yaml``) is taken from a TorchRL git checkout at one commit and copied into a temp
folder twice. The second copy gets ``dqn_atari.patch`` (beside this file): the replay-buffer block
swapped for ``DqnfastTensorDictReplayBuffer``, and the pixel normalisation moved out of the stored
data, because the frame store keeps uint8 frames: the env still gathers ``VecNorm``'s running moments,
and the model's first layer applies them and the scaling to [0, 1]. Nothing else changes.
None of TorchRL's files are kept in this repository.

Both copies run one after the other, with the same hydra overrides (env, frames, buffer size), in
one invocation. For each run it reports:

- wall time of the whole process, and the totals of the script's own ``timeit`` phases
  (collecting, rb - extend, rb - sample, update);
- peak memory: the child's ``ru_maxrss`` (from ``os.wait4``), and the peaks of its anonymous and
  file-backed resident memory (``RssAnon``, ``RssFile`` polled from ``/proc``; a memmap's pages
  count as file-backed);
- the buffer's bytes: TorchRL's ``LazyMemmapStorage`` files on disk (allocated and apparent size,
  and the bytes of each stored entry), dqnfast's store in memory (``nbytes``).

    python tools/torchrl_client/run.py --torchrl /path/to/pytorch/rl --total-frames 48000 \\
        --init-random-frames 40000 --buffer-size 10000

Needs torchrl, tensordict, torchvision (TorchRL's Resize and GrayScale), hydra-core, gymnasium and
ale-py, and dqnfast importable. The child runs are plain ``python dqn_atari.py key=value ...`` calls
through a small wrapper that records the timings (it adds to ``timeit`` and keeps a reference to the
replay buffer; it changes nothing the script does).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

HERE = Path(__file__).resolve().parent
PATCH = HERE / "dqn_atari.patch"
# The commit of TorchRL's "[Versioning] Bump 0.14.0" on main. The three files are the same at every
# later commit the mirror had (up to ae9719f1, 2026-08), and they run with torchrl 0.14.1.
PINNED_COMMIT = "6e18e35b2c68be1a56afebfb0676d217925114cd"
SCRIPT_DIR = "sota-implementations/dqn"
FILES = ("dqn_atari.py", "utils_atari.py", "config_atari.yaml")
PHASES = ("collecting", "rb - extend", "rb - sample", "update")

# The child: runs TorchRL's script as `python dqn_atari.py overrides...` would, and writes what it
# measured to $DQNFAST_CLIENT_OUT. The script erases timeit's registry at every iteration
# (timeit.printevery(..., erase=True)), so the totals are kept here.
CHILD = r"""
import atexit, json, os, runpy, sys, time
t0 = time.perf_counter()
script = sys.argv[1]
sys.argv = [script] + sys.argv[2:]
sys.path.insert(0, os.path.dirname(script))
from torchrl._utils import timeit
totals = {}
_record = timeit._record.__func__
def _recording(cls, name, elapsed):
    t = totals.setdefault(name, [0.0, 0])
    t[0] += elapsed
    t[1] += 1
    _record(cls, name, elapsed)
timeit._record = classmethod(_recording)
buffers = []
def _keep(cls):
    init = cls.__init__
    def __init__(self, *a, **k):
        buffers.append(self)
        init(self, *a, **k)
    cls.__init__ = __init__
from torchrl.data import TensorDictReplayBuffer
_keep(TensorDictReplayBuffer)
try:
    from dqnfast.torchrl_buffer import DqnfastTensorDictReplayBuffer
    _keep(DqnfastTensorDictReplayBuffer)
except ImportError:
    pass
def _report():
    out = {"wall_s": time.perf_counter() - t0, "phases": totals}
    for rb in buffers:
        info = {"type": type(rb).__name__, "len": len(rb)}
        if hasattr(rb, "nbytes"):
            info["nbytes"] = int(rb.nbytes)
        else:
            store = rb.storage._storage
            info["entries"] = {"/".join(k if isinstance(k, tuple) else (k,)): [list(v.shape[1:]), str(v.dtype),
                               int(v.numel() * v.element_size())]
                               for k, v in store.items(include_nested=True, leaves_only=True)}
            info["nbytes"] = sum(e[2] for e in info["entries"].values())
        out.setdefault("buffers", []).append(info)
    # the patched utils_atari.py's VecNorm moments: their decayed count of the frames they saw
    stats = getattr(sys.modules.get("utils_atari"), "PIXEL_STATS", None)
    if stats is not None and stats.count is not None:
        out["pixel_stats_count"] = float(stats.count)
    with open(os.environ["DQNFAST_CLIENT_OUT"], "w") as f:
        json.dump(out, f)
atexit.register(_report)
runpy.run_path(script, run_name="__main__")
"""


def read_torchrl_files(torchrl: Path, commit: str) -> Dict[str, bytes]:
    """The three files from a TorchRL git checkout (bare or not) at `commit`, or, with commit "", as
    they are on disk under `torchrl`."""
    out = {}
    for name in FILES:
        if commit:
            out[name] = subprocess.run(["git", "-C", str(torchrl), "show", f"{commit}:{SCRIPT_DIR}/{name}"],
                                       check=True, capture_output=True).stdout
        else:
            out[name] = (torchrl / SCRIPT_DIR / name).read_bytes()
    return out


def lay_out(root: Path, files: Dict[str, bytes], patched: bool) -> Path:
    """Write the files under root/sota-implementations/dqn (TorchRL's layout, which the patch's
    paths follow) and apply the patch there if `patched`; return the script's folder."""
    folder = root / SCRIPT_DIR
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    if patched:
        # git apply works outside a repository as `patch -p1` does, and refuses a patch that does not fit
        subprocess.run(["git", "apply", "--whitespace=nowarn", str(PATCH)], cwd=root, check=True)
    return folder


def _tree(pid: int) -> List[int]:
    pids, i = [pid], 0
    while i < len(pids):
        try:
            for task in os.listdir(f"/proc/{pids[i]}/task"):
                with open(f"/proc/{pids[i]}/task/{task}/children") as f:
                    pids.extend(int(c) for c in f.read().split())
        except OSError:
            pass
        i += 1
    return pids


def _rss_kb(pid: int) -> Dict[str, int]:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                    out[key] = int(rest.split()[0])
    except OSError:
        pass
    return out


def disk_usage(folder: Path) -> Dict[str, int]:
    allocated = apparent = 0
    for dirpath, _, names in os.walk(folder):
        for name in names:
            st = os.lstat(os.path.join(dirpath, name))
            allocated += st.st_blocks * 512
            apparent += st.st_size
    return {"allocated": allocated, "apparent": apparent}


def run_variant(name: str, folder: Path, overrides: List[str], log: Path, python: str, threads: int,
                poll_s: float = 0.2) -> dict:
    out_json = folder / "client_measures.json"
    env = dict(os.environ, DQNFAST_CLIENT_OUT=str(out_json), PYTHONUNBUFFERED="1")
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    import dqnfast  # the same dqnfast as this process's, for the patched run

    env["PYTHONPATH"] = os.pathsep.join([str(Path(dqnfast.__file__).resolve().parents[1])]
                                        + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    cmd = [python, "-c", CHILD, str(folder / "dqn_atari.py"), *overrides]
    print(f"[{name}] {' '.join(cmd[:2])} <wrapper> {' '.join(cmd[3:])}", flush=True)
    peaks: Dict[str, int] = {}
    t0 = time.perf_counter()
    with open(log, "wb") as logf:
        proc = subprocess.Popen(cmd, cwd=folder, env=env, stdout=logf, stderr=subprocess.STDOUT)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            total: Dict[str, int] = {}
            for p in _tree(proc.pid):
                for k, v in _rss_kb(p).items():
                    total[k] = total.get(k, 0) + v
            for k, v in total.items():
                peaks[k] = max(peaks.get(k, 0), v)
            time.sleep(poll_s)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{name} run failed (exit {proc.returncode}); the end of {log}:\n{tail}")
    measures = json.loads(out_json.read_text())
    return {"wall_s": wall, "maxrss_kb": usage.ru_maxrss, "peak_kb": peaks, **measures}


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--torchrl", type=Path, required=True, help="a TorchRL git checkout or mirror (pytorch/rl)")
    p.add_argument("--commit", default=PINNED_COMMIT,
                   help='TorchRL commit to take the files from ("" reads them from the checkout\'s folder)')
    p.add_argument("--env-name", default="ALE/Breakout-v5")
    p.add_argument("--total-frames", type=int, default=48_000, help="emulator frames (the script divides by 4)")
    p.add_argument("--init-random-frames", type=int, default=40_000,
                   help="emulator frames of random actions (the script divides by 4)")
    p.add_argument("--buffer-size", type=int, default=10_000, help="transitions (dqnfast: frame slots)")
    p.add_argument("--override", action="append", default=[], help="more hydra overrides, key=value")
    p.add_argument("--variants", nargs="+", choices=["original", "dqnfast"], default=["original", "dqnfast"])
    p.add_argument("--workdir", type=Path, default=None, help="where the copies and TorchRL's memmap files go "
                   "(default: a temp folder, removed afterwards)")
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs, hydra outputs, memmap files)")
    p.add_argument("--threads", type=int, default=1, help="torch's threads in both runs (OMP_NUM_THREADS; 0 "
                   "leaves torch's default). On a small busy machine 2 threads made TorchRL's env 7-10x slower")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args(argv)

    files = read_torchrl_files(args.torchrl, args.commit)
    work = Path(tempfile.mkdtemp(prefix="torchrl_client_", dir=args.workdir))
    common = [f"env.env_name={args.env_name}", f"collector.total_frames={args.total_frames}",
              f"collector.init_random_frames={args.init_random_frames}", f"buffer.buffer_size={args.buffer_size}",
              "logger.backend=", *args.override]
    results = {}
    try:
        for variant in args.variants:
            root = work / variant
            folder = lay_out(root, files, patched=variant == "dqnfast")
            overrides = list(common)
            scratch = root / "memmap"
            if variant == "original":  # TorchRL's own option: where LazyMemmapStorage writes its files
                overrides.append(f"buffer.scratch_dir={scratch}")
            r = run_variant(variant, folder, overrides, root / "run.log", sys.executable, args.threads)
            if variant == "original":
                r["disk"] = disk_usage(scratch)
            results[variant] = r
            if variant == "original" and not args.keep:
                shutil.rmtree(scratch, ignore_errors=True)  # the memmap files can be several GB
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")

    print(f"\nTorchRL dqn_atari.py @ {args.commit[:10] or 'checkout'}: {args.env_name}, total_frames="
          f"{args.total_frames}, init_random_frames={args.init_random_frames}, buffer_size={args.buffer_size}, "
          f"threads={args.threads or 'default'}, overrides={args.override}")
    head = f"{'variant':<10}{'wall s':>8}" + "".join(f"{ph:>13}" for ph in PHASES) + \
        f"{'updates':>9}{'maxrss MB':>11}{'anon MB':>9}{'file MB':>9}{'buffer MB':>11}{'disk MB':>9}"
    print(head)
    for variant, r in results.items():
        ph = r["phases"]
        buf = r.get("buffers", [{}])[0]
        disk = r.get("disk", {}).get("allocated", 0)
        print(f"{variant:<10}{r['wall_s']:>8.1f}" + "".join(f"{ph.get(k, [0.0])[0]:>13.1f}" for k in PHASES)
              + f"{ph.get('update', [0, 0])[1]:>9}{r['maxrss_kb'] / 1024:>11.0f}"
              f"{r['peak_kb'].get('RssAnon', 0) / 1024:>9.0f}{r['peak_kb'].get('RssFile', 0) / 1024:>9.0f}"
              f"{buf.get('nbytes', 0) / 2**20:>11.0f}{disk / 2**20:>9.0f}")
    for variant, r in results.items():
        for buf in r.get("buffers", []):
            print(f"{variant}: {buf['type']} holds {buf['len']} transitions, {buf['nbytes']:,} B")
            for key, (shape, dtype, nbytes) in buf.get("entries", {}).items():
                print(f"    {key:<32}{str(shape):<16}{dtype:<16}{nbytes:>16,} B")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results},
                                        indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
