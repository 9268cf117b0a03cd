"""Every preset's frame geometry keeps Breakout's ball: a crop or a resize that loses a 2-pixel ball
would leave an agent nothing to learn from, whatever else its recipe gets right.

The ball is found in the raw screen by its colour, independently of the code under test, and its
box is mapped into the preset's frame; the frame must be brighter than the black background there.
Only frames with the ball well away from the bricks, the paddle and the walls count, so nothing but
the ball can light the box.
"""
from __future__ import annotations

import numpy as np
import pytest

import dqnfast
from dqnfast.config import PRESETS, preset

gym = pytest.importorskip("gymnasium")
ale_py = pytest.importorskip("ale_py")

BALL_RGB = (200, 72, 72)  # the ball's colour (the paddle and one brick row share it)
ROWS, COLS = (100, 180), (14, 146)  # below the bricks, above the paddle, inside the walls
SCREEN = (0, 210, 0, 160)


def ball_frames(steps: int = 1500, seed: int = 0):
    """(screen, ball box) for random-play frames whose ball lies inside ROWS x COLS."""
    gym.register_envs(ale_py)
    env = gym.make("ALE/Breakout-v5", frameskip=4, repeat_action_probability=0.0)
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    out = []
    for t in range(steps):
        action = 1 if t % 40 == 0 else int(rng.integers(4))  # FIRE now and then relaunches the ball
        screen, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
            continue
        band = screen[ROWS[0]:ROWS[1], COLS[0]:COLS[1]]
        hits = np.argwhere(np.all(band == BALL_RGB, axis=-1))
        if len(hits):
            (y0, x0), (y1, x1) = hits.min(0) + (ROWS[0], COLS[0]), hits.max(0) + (ROWS[0], COLS[0])
            out.append((screen, (y0, y1 + 1, x0, x1 + 1)))
    env.close()
    return out


@pytest.fixture(scope="module")
def frames():
    got = ball_frames()
    assert len(got) >= 300, f"random play showed the ball in only {len(got)} frames"
    return got


def mapped_box(box, crop, size):
    """The ball's raw box in frame pixels, widened by one pixel for resampling."""
    top, bottom, left, right = crop
    sy, sx = size / (bottom - top), size / (right - left)
    y0, y1, x0, x1 = box
    return (max(int((y0 - top) * sy) - 1, 0), int(np.ceil((y1 - top) * sy)) + 1,
            max(int((x0 - left) * sx) - 1, 0), int(np.ceil((x1 - left) * sx)) + 1)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_the_ball_survives_every_presets_preprocessing(frames, name):
    cfg = preset(name)
    crop = tuple(cfg.crop) if cfg.crop else SCREEN
    lost = []
    for i, (screen, box) in enumerate(frames):
        frame = dqnfast.preprocess(screen, crop=cfg.crop, size=(cfg.frame_size, cfg.frame_size),
                                   gray=cfg.gray, interp=cfg.interp)
        y0, y1, x0, x1 = mapped_box(box, crop, cfg.frame_size)
        patch = frame[y0:y1, x0:x1]  # empty where the crop cut the ball off
        if patch.size == 0 or patch.max() <= 10:  # the background is 0; the ball is 70-120 in gray
            lost.append(i)
    assert not lost, f"{name}: the ball vanished in {len(lost)} of {len(frames)} frames (first: {lost[:5]})"
