"""dqnfast.feed, the one place where env steps become replay writes, in lockstep with the envs.

For each way an env resets an ended episode (a single env, gymnasium's SAME_STEP and NEXT_STEP
vector envs), envs whose frames identify themselves are stepped with scripted actions and fed into a
replay and, through the Ray actors' ChunkBuilder and ChunkWriter, into a second replay. Each replay
must then hold exactly the transitions the envs made, stream by stream, read back from the frames
(an independent record: every frame says which env, episode and step made it).
"""
from __future__ import annotations

import numpy as np
import pytest

gym = pytest.importorskip("gymnasium")

from gymnasium.vector import AutoresetMode, SyncVectorEnv  # noqa: E402
from support.frames import decode  # noqa: E402
from support.pixel_env import PixelEnv  # noqa: E402

from dqnfast import ReplayBuffer  # noqa: E402
from dqnfast.distributed import ChunkBuilder, ChunkWriter  # noqa: E402
from dqnfast.feed import NEXT_STEP, SAME_STEP, StepFeed, autoreset_mode, autoreset_name  # noqa: E402

SHAPE = (12, 12)
STEPS = 120


def make_env(mode: str, num_envs: int):
    if mode == "single":
        return PixelEnv(0, frame_shape=SHAPE, max_steps=9, p_terminate=0.1, seed=5)
    autoreset = AutoresetMode.SAME_STEP if mode == SAME_STEP else AutoresetMode.NEXT_STEP
    return SyncVectorEnv([lambda i=i: PixelEnv(i, frame_shape=SHAPE, max_steps=9, p_terminate=0.1, seed=5 + i)
                          for i in range(num_envs)], autoreset_mode=autoreset)


def drive(mode: str, num_envs: int, sinks):
    """Steps the envs STEPS times, feeding every sink through one StepFeed each; returns the
    transitions the envs made (env, (episode, step) before, action, reward, (episode, step) after,
    terminated, truncated), recorded from what the env returned, not from the feed."""
    env = make_env(mode, num_envs)
    assert autoreset_mode(env) == (None if mode == "single" else mode)
    feeds = [StepFeed(num_envs, autoreset_mode(env)) for _ in sinks]
    obs, _ = env.reset(seed=0)
    obs = np.asarray(obs).reshape(num_envs, *SHAPE)
    for feed, sink in zip(feeds, sinks):
        feed.start(sink, obs)
    made, resetting = [], np.zeros(num_envs, bool)
    for t in range(STEPS):
        actions = np.array([(3 * t + i) % 3 for i in range(num_envs)])
        if mode == "single":
            o, r, term, trunc, info = env.step(int(actions[0]))
            nxt, rewards, terms, truncs = o[None], np.array([r]), np.array([term]), np.array([trunc])
        else:
            nxt, rewards, terms, truncs, info = env.step(actions)
        for i in range(num_envs):
            if resetting[i]:  # NEXT_STEP: this step only reset env i
                continue
            last = nxt[i] if not (mode == SAME_STEP and (terms[i] or truncs[i])) else info["final_obs"][i]
            made.append((i, decode(obs[i])[1:], int(actions[i]), float(rewards[i]), decode(last)[1:],
                         bool(terms[i]), bool(truncs[i])))
        ended = [feed.step(sink, actions, nxt, rewards, terms, truncs, info).ended for feed, sink in zip(feeds, sinks)]
        if mode == "single" and ended[0].size:  # a single env: the caller resets it
            first, _ = env.reset()
            nxt = first[None]
            for feed, sink in zip(feeds, sinks):
                feed.start(sink, nxt, np.zeros(1, np.int64))
        resetting = (terms | truncs) if mode == NEXT_STEP else np.zeros(num_envs, bool)
        obs = np.asarray(nxt).reshape(num_envs, *SHAPE)
    return made


def held(rb: ReplayBuffer):
    b = rb.gather(rb.valid_indices())
    out = []
    for k in range(len(b.index)):
        before, after = decode(b.obs[k, -1]), decode(b.next_obs[k, -1])
        out.append((before[0], before[1:], int(b.action[k]), float(b.reward[k]), after[1:], bool(b.terminated[k]),
                    bool(b.truncated[k])))
    return out


@pytest.mark.parametrize("mode, num_envs", [("single", 1), (SAME_STEP, 3), (NEXT_STEP, 3)])
def test_a_replay_and_a_chunk_hold_exactly_the_transitions_the_envs_made(mode, num_envs):
    rb = ReplayBuffer(10_000, SHAPE, stack=2, num_envs=num_envs)
    chunk = ChunkBuilder(SHAPE, prioritized=False)
    made = drive(mode, num_envs, [rb, chunk])
    assert sum(m[5] or m[6] for m in made) >= 3 * num_envs  # many episodes ended, both ways
    assert sorted(held(rb)) == sorted(made)
    via_chunk = ReplayBuffer(10_000, SHAPE, stack=2, num_envs=num_envs)
    ChunkWriter(via_chunk, 1, num_envs).write(chunk.build({"actor": 0, "incarnation": 1, "seq": 0,
                                                           "weights_version": 0}))
    assert sorted(held(via_chunk)) == sorted(made)


def test_autoreset_names_and_a_disabled_vector_env():
    assert autoreset_name(AutoresetMode.SAME_STEP) == autoreset_name("same_step") == SAME_STEP
    assert autoreset_name("NextStep") == NEXT_STEP and autoreset_name("disabled") is None
    env = make_env(SAME_STEP, 1)
    env.metadata = {**env.metadata, "autoreset_mode": AutoresetMode.DISABLED}
    with pytest.raises(ValueError, match="SAME_STEP or NEXT_STEP"):
        autoreset_mode(env)
    with pytest.raises(ValueError, match="single env"):
        StepFeed(2, None)
