"""Snapshots (save / load) and file-backed frame storage."""
from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from dqnfast import ReplayBuffer
from support.native import compile_cpp
from support.replay_checks import assert_batches_equal
from support.streams import StreamDriver

SHAPE = (6, 5)


def driven(num_envs=3, cap=120, seed=4, pad="zero", n=500, **kw):
    rb = ReplayBuffer(cap, SHAPE, stack=4, num_envs=num_envs, seed=seed, pad=pad, **kw)
    drv = StreamDriver(num_envs, SHAPE, seed=seed)
    drv.run([rb], n)
    return rb, drv


def assert_same_state(a: ReplayBuffer, b: ReplayBuffer) -> None:
    assert (a.capacity, a.frame_shape, a.stack, a.num_envs, a.seed, a.pad, a.n_step, a.gamma) == (
        b.capacity, b.frame_shape, b.stack, b.num_envs, b.seed, b.pad, b.n_step, b.gamma)
    assert a.writes == b.writes and len(a) == len(b)
    np.testing.assert_array_equal(a.valid_indices(), b.valid_indices())
    assert_batches_equal(a.gather(a.valid_indices()), b.gather(b.valid_indices()))
    for e in range(a.num_envs):
        assert a.episode_active(e) == b.episode_active(e)
        if a.writes == 0:  # no frame yet: both refuse
            for buf in (a, b):
                with pytest.raises(ValueError, match="no frame yet"):
                    buf.stacked(e)
        else:
            np.testing.assert_array_equal(a.stacked(e), b.stacked(e))


@pytest.mark.parametrize("seed", [2**63, 2**64 - 1])
def test_buffers_with_seeds_above_int64_reload(tmp_path, seed):
    # Seeds are 64-bit unsigned: half of the random seeds of unseeded buffers are >= 2**63, and
    # load() passes a snapshot's seed back to the constructor.
    rb, _ = driven(seed=seed, n=50)
    assert rb.seed == seed
    rb.save(tmp_path / "rb")
    loaded = ReplayBuffer.load(tmp_path / "rb")
    assert_same_state(rb, loaded)
    assert_batches_equal(rb.sample(8), loaded.sample(8))


@pytest.mark.parametrize("pad, n_step", [("zero", 1), ("first", 1), ("zero", 3)])
@pytest.mark.parametrize("n", [0, 7, 500])  # empty, partly filled, wrapped around
def test_load_restores_everything_and_continues_identically(tmp_path, pad, n_step, n):
    rb, drv = driven(pad=pad, n=n, n_step=n_step, gamma=0.9)
    if len(rb):
        rb.sample(5)  # the RNG counter is part of the state
    path = tmp_path / "rb.dqnfast"
    rb.save(path)
    loaded = ReplayBuffer.load(path)
    assert type(loaded) is ReplayBuffer
    assert_same_state(rb, loaded)
    drv.run([rb, loaded], 300)  # both continue with the same episodes mid-way
    assert_same_state(rb, loaded)
    for _ in range(3):
        assert_batches_equal(rb.sample(32), loaded.sample(32))


def test_snapshots_of_equal_buffers_are_equal_files(tmp_path):
    a, _ = driven()
    b, _ = driven()
    a.save(tmp_path / "a")
    b.save(tmp_path / "b", durable=False)
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()
    assert not [p for p in os.listdir(tmp_path) if ".tmp." in p]  # no temporary file left behind


def test_a_crash_mid_save_never_loses_the_previous_snapshot(tmp_path):
    path = tmp_path / "rb.dqnfast"
    child = textwrap.dedent(f"""
        import numpy as np, sys
        from dqnfast import ReplayBuffer
        rb = ReplayBuffer(30000, (84, 84), seed=1)   # ~200 MB: a save takes a while
        f = np.zeros((84, 84), np.uint8)
        rb.start_episode(f)
        for i in range(29000):
            rb.add(i % 4, 1.0, f, False)
        rb.save({str(path)!r})
        print("first", flush=True)
        while True:
            rb.add(0, 1.0, f, False)
            rb.save({str(path)!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    try:
        assert proc.stdout.readline().strip() == "first"
        deadline = time.monotonic() + 120
        while not [p for p in os.listdir(tmp_path) if ".tmp." in p]:  # wait until a save is under way
            assert time.monotonic() < deadline, "the child never started a second save"
            time.sleep(0.001)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    rb = ReplayBuffer.load(path)  # the last complete snapshot, intact
    assert rb.writes >= 29001 and len(rb) == len(rb.valid_indices())


@pytest.fixture()
def snapshot(tmp_path):
    rb, _ = driven()
    path = tmp_path / "rb.dqnfast"
    rb.save(path)
    return path


def rewrite(path, fn):
    data = bytearray(path.read_bytes())
    path.write_bytes(bytes(fn(data)))


@pytest.mark.parametrize(
    "damage, msg",
    [
        (lambda d: d[:-1], "is truncated"),
        (lambda d: d[: len(d) // 2], "is truncated"),
        (lambda d: d[:20], "truncated|bad header"),
        (lambda d: d[:4], "not a dqnfast replay buffer file"),
        (lambda d: d + b"x", "extra bytes"),
        (lambda d: d[:200] + bytes([d[200] ^ 1]) + d[201:], "checksum mismatch"),  # a frame byte
        (lambda d: d[:-20] + bytes([d[-20] ^ 1]) + d[-19:], "checksum mismatch"),  # stream state
        (lambda d: d[:24] + bytes([d[24] ^ 1]) + d[25:], "header checksum mismatch|inconsistent header"),
        (lambda d: b"\x89PNG\r\n\x1a\n" + d[8:], "not a dqnfast replay buffer file"),
        (lambda d: d[:8] + struct.pack("<I", 99) + d[12:], "newer dqnfast .format version 99"),
        (lambda d: b"", "not a dqnfast replay buffer file"),
    ],
)
def test_damaged_files_are_refused_with_a_clear_error(snapshot, damage, msg):
    rewrite(snapshot, damage)
    with pytest.raises(ValueError, match=msg):
        ReplayBuffer.load(snapshot)


def test_missing_file_and_bad_path_types(tmp_path):
    with pytest.raises(FileNotFoundError, match="cannot open"):
        ReplayBuffer.load(tmp_path / "nope")
    with pytest.raises(TypeError):
        ReplayBuffer.load(123)
    rb, _ = driven(n=10)
    with pytest.raises(OSError, match="cannot create"):
        rb.save(tmp_path / "no-such-dir" / "rb")


def test_file_backed_storage_behaves_like_memory(tmp_path):
    store = tmp_path / "frames.bin"
    disk, drv_a = driven(storage_path=store)
    mem, drv_b = driven()
    assert store.stat().st_size == disk.capacity * int(np.prod(SHAPE))
    assert_same_state(disk, mem)
    assert_batches_equal(disk.sample(64), mem.sample(64))
    disk.save(tmp_path / "snap")
    again = ReplayBuffer.load(tmp_path / "snap", storage_path=tmp_path / "frames2.bin")
    assert_same_state(again, mem)
    del disk, again
    assert not store.exists() and not (tmp_path / "frames2.bin").exists()  # scratch files go with the buffer


def test_storage_path_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="cannot create the storage file"):
        ReplayBuffer(100, SHAPE, storage_path=tmp_path / "missing-dir" / "f")
    with pytest.raises(TypeError, match="storage_path"):
        ReplayBuffer(100, SHAPE, storage_path=b"bytes")


def test_snapshot_checksum_is_xxh64_by_its_known_answers(tmp_path):
    """The hand-written XXH64 that checksums snapshots gives the published digests (and the reference
    library's on inputs that cross its 32-byte stripes), one-shot and streamed in pieces."""
    exe = compile_cpp(tmp_path, "cpp/tests/xxh64_known_answers.cpp", ["-O2", "-Wall", "-Wextra", "-Werror"])
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout
    assert "vectors=9 failures=0" in r.stdout


def test_a_prioritized_snapshot_saved_while_priorities_change_loads(tmp_path):
    """save() while another thread samples and updates priorities (no thread adds: the one rule for
    save()): every snapshot loads. The sum tree's leaves are copied under its lock and the file is
    hashed from the bytes written (a leaf changed between hashing and writing made the file
    unloadable; the deterministic case is in cpp/tests/race_regressions.cpp)."""
    import threading

    from dqnfast import PrioritizedReplayBuffer

    cap = 1 << 14
    pr = PrioritizedReplayBuffer(cap, (4, 4), stack=1, num_envs=1, seed=0, alpha=0.6)
    pr.start_episode(np.zeros((4, 4), np.uint8))
    frame = np.ones((4, 4), np.uint8)
    for _ in range(cap + 10):
        pr.add(0, 0.0, frame, False)
    size = len(pr)
    stop, errors = threading.Event(), []

    def learner() -> None:
        rng = np.random.default_rng(1)
        out = pr.empty_prioritized_batch(64)
        lo = pr.writes - cap + 1
        try:
            while not stop.is_set():
                b = pr.sample(64, out=out)
                pr.update_priorities(b.index, rng.uniform(0.1, 5, 64))
                pr.update_priorities(lo + rng.integers(0, cap - 1, 4096), rng.uniform(0.1, 5, 4096))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=learner)
    t.start()
    try:
        for i in range(20):
            path = tmp_path / f"snapshot-{i}.bin"
            pr.save(path, durable=False)
            assert len(PrioritizedReplayBuffer.load(path)) == size
    finally:
        stop.set()
        t.join()
    assert not errors, errors[0]
