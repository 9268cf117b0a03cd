"""dqnfast.preprocess: bit-exact against the numpy reference on every SIMD path, OpenCV and ALE
agreement, strides and layouts, batches and threads, `out`, and clear errors for bad input."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dqnfast
from dqnfast import _core
from dqnfast.preprocess_reference import area_weights, preprocess_ref

cv2 = pytest.importorskip("cv2")

LEVELS = ["scalar", "avx2", "avx512"]
SUPPORTED = _core._simd_supported()


@pytest.fixture(params=LEVELS)
def simd(request):
    """Run the test on one forced SIMD path (skipped where the CPU lacks it)."""
    if request.param not in SUPPORTED:
        pytest.skip(f"CPU has no {request.param}")
    assert _core.set_simd(request.param) == request.param
    yield request.param
    _core.set_simd("auto")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def frames(rng, shape):
    return rng.integers(0, 256, shape, dtype=np.uint8)


def check(frame, **kw):
    got = dqnfast.preprocess(frame, **kw)
    want = preprocess_ref(frame, **kw)
    assert got.dtype == np.uint8 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    return got


# ---- exactness against the reference, every path ---------------------------------------------------


@pytest.mark.parametrize("interp", ["nearest", "area"])
@pytest.mark.parametrize("gray", ["luma", "mean"])
@pytest.mark.parametrize("with_prev", [False, True])
def test_breakout_shape_matches_reference(simd, rng, interp, gray, with_prev):
    f = frames(rng, (210, 160, 3))
    p = frames(rng, (210, 160, 3)) if with_prev else None
    check(f, prev=p, gray=gray, interp=interp)
    check(f[..., 1], prev=None if p is None else p[..., 2], interp=interp)  # gray input (strided view)
    check(np.ascontiguousarray(f[..., 0]), prev=None if p is None else np.ascontiguousarray(p[..., 0]), interp=interp)


# Odd sizes exercise vector tails (16/64-lane chunks), downscales past the 128-byte AVX-512
# window (gather fallback), upscales, identity and single pixels.
SIZES = [(84, 84), (1, 1), (7, 13), (63, 65), (17, 129), (300, 250), (210, 160), (5, 400)]
CROPS = [None, (34, 194, 8, 152), (0, 1, 0, 1), (3, 210, 159, 160), (100, 101, 0, 160)]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("crop", CROPS)
def test_sizes_and_crops(simd, rng, size, crop):
    f, p = frames(rng, (210, 160, 3)), frames(rng, (210, 160, 3))
    for interp in ("nearest", "area"):
        check(f, prev=p, crop=crop, size=size, interp=interp)
        check(f[..., 0].copy(), crop=crop, size=size, interp=interp)


@pytest.mark.parametrize("w", [1, 2, 3, 4, 5, 21, 22, 42, 43, 64, 65, 127, 128, 129, 400])
def test_narrow_and_wide_rows(simd, rng, w):
    # Rows under 4 bytes have no safe 4-byte gather; rows under 128 bytes use masked loads.
    for shape in [(9, w, 3), (9, w)]:
        f, p = frames(rng, shape), frames(rng, shape)
        for size in [(4, 3), (9, w), (5, max(1, w // 3)), (2, 2 * w)]:
            for interp in ("nearest", "area"):
                check(f, prev=p, size=size, interp=interp)


@pytest.mark.parametrize("size", [(1, 1), (3, 20), (7, 40), (5, 100), (2, 190)])
def test_strong_area_downscale(simd, rng, size):
    # Dozens to thousands of taps per output: past every window, onto the gather paths.
    f = frames(rng, (20, 3000))
    check(f, size=size, interp="area")
    check(frames(rng, (30, 1000, 3)), prev=frames(rng, (30, 1000, 3)), size=size, interp="area")


def strided_views(f):
    """Non-contiguous views of an (H, W, 3) frame: steps, reversal, transposes, channel order."""
    return {
        "steps": f[::2, ::3],
        "reversed rows": f[::-1],
        "reversed cols": f[:, ::-1],
        "transposed": np.swapaxes(f, 0, 1),
        "bgr view": f[..., ::-1],
        "fortran": np.asfortranarray(f),
        "padded rows": np.pad(f, ((0, 0), (0, 7), (0, 0)))[:, :160],
    }


def test_strided_inputs(simd, rng):
    f, p = frames(rng, (210, 160, 3)), frames(rng, (210, 160, 3))
    for name, v in strided_views(f).items():
        pv = np.ascontiguousarray(strided_views(p)[name])  # prev with other strides than frame
        for interp in ("nearest", "area"):
            got = check(v, prev=pv, interp=interp, crop=(1, v.shape[0] - 2, 3, v.shape[1] - 1), size=(50, 41))
            np.testing.assert_array_equal(
                got, dqnfast.preprocess(np.ascontiguousarray(v), prev=pv, interp=interp,
                                        crop=(1, v.shape[0] - 2, 3, v.shape[1] - 1), size=(50, 41)), err_msg=name)
            check(v[..., 0], prev=pv[..., 2], interp=interp)


def test_batches_equal_single_frames(simd, rng):
    f, p = frames(rng, (7, 210, 160, 3)), frames(rng, (7, 210, 160, 3))
    for interp in ("nearest", "area"):
        got = check(f, prev=p, interp=interp)
        for i in range(len(f)):
            np.testing.assert_array_equal(got[i], dqnfast.preprocess(f[i], prev=p[i], interp=interp))
        check(f[::2, :, ::2, 0], interp=interp)  # strided gray batch
    assert dqnfast.preprocess(f[:0]).shape == (0, 84, 84)


def test_threaded_batches_are_exact(simd, rng):
    f, p = frames(rng, (9, 60, 70, 3)), frames(rng, (9, 60, 70, 3))
    want = {i: preprocess_ref(f, prev=p, interp=i, size=(30, 33)) for i in ("nearest", "area")}
    saved = _core._threads()
    try:
        for threads in (1, 2, 3):
            _core._set_threads(threads, 0)  # split even this small batch
            for interp, w in want.items():
                np.testing.assert_array_equal(dqnfast.preprocess(f, prev=p, interp=interp, size=(30, 33)), w)
    finally:
        _core._set_threads(*saved)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_geometry_every_path(data):
    h = data.draw(st.integers(1, 70), label="h")
    w = data.draw(st.integers(1, 90), label="w")
    rgb = data.draw(st.booleans(), label="rgb")
    top = data.draw(st.integers(0, h - 1), label="top")
    bottom = data.draw(st.integers(top + 1, h), label="bottom")
    left = data.draw(st.integers(0, w - 1), label="left")
    right = data.draw(st.integers(left + 1, w), label="right")
    size = (data.draw(st.integers(1, 100), label="oh"), data.draw(st.integers(1, 100), label="ow"))
    interp = data.draw(st.sampled_from(["nearest", "area"]), label="interp")
    gray = data.draw(st.sampled_from(["luma", "mean"]), label="gray")
    use_prev = data.draw(st.booleans(), label="prev")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    view = data.draw(st.sampled_from(["plain", "steps", "reversed", "transposed", "channel view"]), label="view")
    r = np.random.default_rng(seed)
    # Draw a bigger base array and take a view of it with the drawn (h, w): other strides, same pixels.
    if view == "steps":
        base = frames(r, (2 * h, 3 * w, 3))[::2, ::3]
    elif view == "reversed":
        base = frames(r, (h, w, 3))[::-1, ::-1]
    elif view == "transposed":
        base = np.swapaxes(frames(r, (w, h, 3)), 0, 1)
    elif view == "channel view":
        base = frames(r, (h, w, 4))[..., 1:]
    else:
        base = frames(r, (h, w, 3))
    f = base if rgb else base[..., 0]
    p = frames(r, f.shape) if use_prev else None
    kw = dict(prev=p, crop=(top, bottom, left, right), size=size, interp=interp, gray=gray)
    want = preprocess_ref(f, **kw)
    try:
        for level in SUPPORTED:
            _core.set_simd(level)
            np.testing.assert_array_equal(dqnfast.preprocess(f, **kw), want, err_msg=level)
    finally:
        _core.set_simd("auto")


def test_area_weights_sum_exactly():
    for n, m in [(210, 84), (160, 84), (84, 210), (7, 7), (1000, 3), (3, 1000), (5, 1)]:
        for q in (11, 12):
            w = area_weights(n, m, q)
            assert (w >= 0).all() and (w.sum(axis=1) == 1 << q).all()


# ---- agreement with OpenCV and ALE ------------------------------------------------------------------


def test_luma_equals_opencv_on_every_colour(simd):
    c = np.arange(1 << 24, dtype=np.uint32)
    rgb = np.stack([c >> 16, (c >> 8) & 255, c & 255], axis=-1).astype(np.uint8).reshape(4096, 4096, 3)
    got = dqnfast.preprocess(rgb, size=(4096, 4096))
    np.testing.assert_array_equal(got, cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))


def test_mean_is_floor_of_sum_over_three(simd):
    r = np.arange(256, dtype=np.uint8)
    rgb = np.stack([np.stack([r, np.full(256, g, np.uint8), np.full(256, b, np.uint8)], -1)
                    for g, b in [(0, 0), (255, 0), (255, 255)]])  # sums 0 .. 765
    got = dqnfast.preprocess(rgb, size=(3, 256), gray="mean")
    np.testing.assert_array_equal(got, (rgb.astype(int).sum(-1) // 3).astype(np.uint8))


@pytest.mark.parametrize("size,crop", [((84, 84), None), ((84, 84), (34, 194, 8, 152)), ((105, 80), None),
                                       ((70, 53), (1, 209, 2, 158)), ((50, 160), None), ((1, 1), None),
                                       ((420, 320), None), ((300, 200), (10, 100, 5, 90))])
def test_area_within_one_of_opencv(rng, size, crop):
    f = frames(rng, (210, 160, 3))
    t, b, l, r = crop or (0, 210, 0, 160)
    ref = cv2.resize(cv2.cvtColor(np.ascontiguousarray(f[t:b, l:r]), cv2.COLOR_RGB2GRAY), size[::-1],
                     interpolation=cv2.INTER_AREA)
    got = dqnfast.preprocess(f, crop=crop, size=size, interp="area")
    assert np.abs(got.astype(int) - ref).max() <= 1


@pytest.mark.slow
@pytest.mark.atari
def test_luma_equals_ale_grayscale_on_breakout():
    gym = pytest.importorskip("gymnasium")
    ale_py = pytest.importorskip("ale_py")
    gym.register_envs(ale_py)
    env = gym.make("ALE/Breakout-v5", frameskip=1, repeat_action_probability=0.0)
    env.reset(seed=3)
    ale = env.unwrapped.ale
    actions = np.random.default_rng(3).integers(0, env.action_space.n, 300)
    checked = colours = 0
    seen = set()
    for t, a in enumerate(actions):
        _, _, term, trunc, _ = env.step(int(a))
        if term or trunc:
            env.reset()
        if t % 10 == 0:
            rgb = ale.getScreenRGB()
            got = dqnfast.preprocess(rgb, size=rgb.shape[:2])
            np.testing.assert_array_equal(got, ale.getScreenGrayscale())
            seen.update(map(tuple, np.unique(rgb.reshape(-1, 3), axis=0)))
            checked += 1
    env.close()
    colours = len(seen)
    assert checked == 30 and colours >= 5


# ---- out, threads, caching ----------------------------------------------------------------------------


def test_out_is_written_in_place(rng):
    f = frames(rng, (4, 210, 160, 3))
    slots = np.zeros((10, 84, 84), np.uint8)  # e.g. a replay buffer's frame slots
    res = dqnfast.preprocess(f[0], out=slots[3])
    assert res is slots[3] or np.shares_memory(res, slots)
    np.testing.assert_array_equal(slots[3], preprocess_ref(f[0]))
    assert not slots[[0, 1, 2, 4]].any()
    res = dqnfast.preprocess(f, out=slots[5:9], interp="area")
    np.testing.assert_array_equal(slots[5:9], preprocess_ref(f, interp="area"))


def test_concurrent_callers(rng):
    f = frames(rng, (8, 210, 160, 3))
    sizes = [(84, 84), (40, 50), (84, 84), (13, 7)]
    want = [preprocess_ref(f, size=s, interp="area" if i % 2 else "nearest") for i, s in enumerate(sizes)]
    errors = []

    def work(i):
        try:
            for _ in range(20):
                got = dqnfast.preprocess(f, size=sizes[i], interp="area" if i % 2 else "nearest")
                np.testing.assert_array_equal(got, want[i])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(sizes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_many_geometries_cycle_through_the_plan_cache(rng):
    f = frames(rng, (50, 60, 3))
    for rep in range(2):
        for k in range(1, 25):
            check(f, size=(k, 25 - k + 1), interp="area" if k % 3 == 0 else "nearest")


def test_simd_controls():
    assert _core.simd_level() in SUPPORTED
    assert SUPPORTED[0] == "scalar"
    with pytest.raises(ValueError, match="one of"):
        _core.set_simd("sse9")
    for level in LEVELS:
        if level not in SUPPORTED:
            with pytest.raises(ValueError, match="does not support"):
                _core.set_simd(level)
    assert _core.set_simd("auto") == SUPPORTED[-1]
    assert dqnfast.preprocess.__module__ == "dqnfast._core"
    from dqnfast.preprocessing import simd_level

    assert simd_level() == SUPPORTED[-1]


def run_python(code, **env):
    e = dict(os.environ, **env)
    e["PYTHONPATH"] = os.pathsep.join(p for p in [os.path.dirname(os.path.dirname(dqnfast.__file__)),
                                                  e.get("PYTHONPATH", "")] if p)
    return subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True, timeout=60)


def test_env_var_caps_the_level():
    r = run_python("import dqnfast._core as c; print(c.simd_level())", DQNFAST_SIMD="scalar")
    assert r.returncode == 0 and r.stdout.strip() == "scalar", r.stderr
    r = run_python("import warnings; warnings.simplefilter('always')\nimport dqnfast._core as c; print(c.simd_level())",
                   DQNFAST_SIMD="fastest")
    assert r.returncode == 0 and r.stdout.strip() == SUPPORTED[-1]
    assert "DQNFAST_SIMD ignored" in r.stderr


# ---- bad input ---------------------------------------------------------------------------------------

F = np.zeros((210, 160, 3), np.uint8)
G = np.zeros((210, 160), np.uint8)

BAD = [
    (dict(frame=F.tolist()), TypeError, "frame must be a numpy.ndarray"),
    (dict(frame=F.astype(np.float32)), TypeError, "frame must have dtype uint8, got float32"),
    (dict(frame=F.astype(np.int8)), TypeError, "dtype uint8, got int8"),
    (dict(frame=np.zeros((210, 160, 4), np.uint8)), ValueError, "4 channels"),
    (dict(frame=np.zeros((2, 210, 160, 4), np.uint8)), ValueError, "4 channels"),
    (dict(frame=np.zeros((210, 160, 1), np.uint8)), ValueError, "1 channels"),
    (dict(frame=np.zeros(5, np.uint8)), ValueError, r"must have shape \(H, W\)"),
    (dict(frame=np.zeros((1, 2, 3, 4, 3), np.uint8)), ValueError, r"must have shape \(H, W\)"),
    (dict(frame=np.zeros((0, 160, 3), np.uint8)), ValueError, "frame is empty"),
    (dict(frame=F, prev=G), ValueError, "prev must have the same shape as frame"),
    (dict(frame=F, prev=F[:100]), ValueError, "prev must have the same shape"),
    (dict(frame=F, prev=F.astype(np.uint16)), TypeError, "prev must have dtype uint8"),
    (dict(frame=F, crop=(0, 211, 0, 160)), ValueError, "outside the 210x160 frame"),
    (dict(frame=F, crop=(-1, 200, 0, 160)), ValueError, "outside"),
    (dict(frame=F, crop=(0, 100, 50, 161)), ValueError, "outside"),
    (dict(frame=F, crop=(10, 10, 0, 160)), ValueError, "is empty"),
    (dict(frame=F, crop=(0, 100, 90, 80)), ValueError, "is empty"),
    (dict(frame=F, crop=(0, 100, 0)), ValueError, "crop must be a tuple of 4 ints"),
    (dict(frame=F, crop=(0, 100.0, 0, 50)), TypeError, "crop entries must be an int, got float"),
    (dict(frame=F, crop="top"), TypeError, "crop must be a tuple of 4 ints"),
    (dict(frame=F, size=(0, 84)), ValueError, "must be positive"),
    (dict(frame=F, size=0), ValueError, "must be positive"),
    (dict(frame=F, size=(84, -1)), ValueError, "must be positive"),
    (dict(frame=F, size=(84, 84, 1)), ValueError, "size must be an int or a tuple of 2 ints"),
    (dict(frame=F, size=(84.0, 84)), TypeError, "size entries must be an int, got float"),
    (dict(frame=F, size=(True, 84)), TypeError, "size entries must be an int, got bool"),
    (dict(frame=F, gray="bt601"), ValueError, "gray must be 'luma' or 'mean', got 'bt601'"),
    (dict(frame=F, gray=1), TypeError, "gray must be a str"),
    (dict(frame=F, interp="bilinear"), ValueError, "interp must be 'nearest' or 'area', got 'bilinear'"),
    (dict(frame=F, out=np.zeros((84, 85), np.uint8)), ValueError, r"out must have shape \(84, 84\)"),
    (dict(frame=F, out=np.zeros((84, 84), np.float32)), TypeError, "out must have dtype uint8"),
    (dict(frame=F, out=np.zeros((84, 168), np.uint8)[:, ::2]), ValueError, "out must be C-contiguous"),
    (dict(frame=F, out=np.zeros((84, 84), np.uint8).T), ValueError, "C-contiguous"),
    (dict(frame=F, out=[[0] * 84] * 84), TypeError, "out must be a numpy.ndarray"),
    (dict(frame=np.zeros((3, 210, 160, 3), np.uint8), out=np.zeros((84, 84), np.uint8)), ValueError,
     r"out must have shape \(3, 84, 84\)"),
]


@pytest.mark.parametrize("kw,exc,msg", BAD, ids=[m for _, _, m in BAD])
def test_bad_input_raises_clearly(kw, exc, msg):
    kw = dict(kw)
    frame = kw.pop("frame")
    with pytest.raises(exc, match=msg):
        dqnfast.preprocess(frame, **kw)


def test_read_only_and_overlapping_out():
    ro = np.zeros((84, 84), np.uint8)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        dqnfast.preprocess(F, out=ro)
    big = np.zeros((210, 160), np.uint8)
    with pytest.raises(ValueError, match="share memory with frame"):
        dqnfast.preprocess(big, size=(10, 16), out=big.reshape(-1)[:160].reshape(10, 16))
    with pytest.raises(ValueError, match="share memory with prev"):
        dqnfast.preprocess(G, prev=big, size=(10, 16), out=big.reshape(-1)[:160].reshape(10, 16))


def test_call_errors():
    with pytest.raises(TypeError, match="missing required argument 'frame'"):
        dqnfast.preprocess()
    with pytest.raises(TypeError, match="takes 1 positional argument"):
        dqnfast.preprocess(F, None)
    with pytest.raises(TypeError, match="unexpected keyword argument 'sizes'"):
        dqnfast.preprocess(F, sizes=(84, 84))
    with pytest.raises(TypeError, match="multiple values for argument 'frame'"):
        dqnfast.preprocess(F, frame=F)
    np.testing.assert_array_equal(dqnfast.preprocess(frame=F, size=84), np.zeros((84, 84), np.uint8))
    got = dqnfast.preprocess(F, crop=tuple(np.array([0, 100, 0, 80])), size=(np.int64(10), np.uint8(12)))
    assert got.shape == (10, 12)  # numpy integers are ints
    with pytest.raises(TypeError, match="size entries must be an int, got bool"):
        dqnfast.preprocess(F, size=(np.bool_(True), 3))
    with pytest.raises(ValueError, match="out of range"):
        dqnfast.preprocess(F, size=(2**70, 3))
    kw = {"".join(["si", "ze"]): (3, 4)}  # a keyword name that is not interned
    assert dqnfast.preprocess(F, **kw).shape == (3, 4)
