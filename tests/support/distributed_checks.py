"""Exactness checks of a replay fed by CountingPixelVectorEnv actors (dqnfast.distributed.fake_env).

Every frame says (actor, env, seed, episode, step); a restarted actor draws a new seed, so
(actor, env, seed, episode) names one episode for good. A replay is exact when every sampleable
transition's states hold consecutive frames of one episode of one actor env, zero-padded before
its start, the reward is the env's, and every episode it holds is contiguous from its first step
(a chunk went in whole or not at all).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Dict, List, Tuple

import numpy as np

from dqnfast.distributed.fake_env import HEADER, MAGIC, decode_frame


def check_replay_exact(rb, envs_per_actor: int, quiescent: bool = True) -> Dict[str, int]:
    """AssertionError naming the first inexact transition; else counts of what was checked.

    ``quiescent=False`` while a writer is still adding (nothing may be overwritten then): len(rb)
    and the validity scan are then two different moments, so they are not compared."""
    idx = rb.valid_indices()
    if quiescent:
        assert len(rb) == len(idx), f"len(rb)={len(rb)} but the validity scan finds {len(idx)}"
    assert rb.n_step == 1, "this check reads one-step transitions"
    steps_of: Dict[Tuple[int, int, int, int], List[int]] = defaultdict(list)
    ends: Dict[Tuple[int, int, int, int], List[int]] = defaultdict(list)
    for lo in range(0, len(idx), 4096):  # in blocks: a whole large replay gathered at once is gigabytes
        _check_block(rb, idx[lo:lo + 4096], steps_of, ends)
    for ep, steps in steps_of.items():
        s = np.sort(np.array(steps))
        # an episode ends (terminated or truncated) at its last step only, and at most once
        assert len(ends.get(ep, [])) <= 1 and all(e == s[-1] for e in ends.get(ep, [])), (
            f"episode {ep} ends at steps {ends.get(ep)} but holds steps up to {s[-1]}")
        # the oldest episode of a stream may have lost its first steps to overwriting, never a middle
        assert np.array_equal(s, np.arange(s[0], s[0] + len(s))), f"episode {ep} has a gap: steps {s.tolist()}"
    for stream in range(rb.num_envs):  # one replay stream per actor env, in order
        if rb.episode_active(stream):
            actor, env, *_ = decode_frame(rb.stacked(stream)[-1])
            assert (actor, env) == divmod(stream, envs_per_actor), f"stream {stream} holds actor {actor} env {env}"
    incarnations = sorted({(ep[0], ep[2]) for ep in steps_of})  # (actor, seed): a restart draws a new seed
    return {"transitions": int(len(idx)), "episodes": len(steps_of),
            "actors": len({ep[0] for ep in steps_of}), "incarnations": len(incarnations),
            "incarnation_ids": [list(i) for i in incarnations]}


def _check_block(rb, idx: np.ndarray, steps_of: Dict[Tuple[int, int, int, int], List[int]],
                 ends: Dict[Tuple[int, int, int, int], List[int]]) -> None:
    batch = rb.gather(idx)
    n = len(idx)

    def headers(states: np.ndarray) -> np.ndarray:  # (B, stack, 6) words; all-zero frames give zeros
        flat = states.reshape(n, rb.stack, -1)
        words = np.ascontiguousarray(flat[:, :, :HEADER * 4]).view("<u4")
        blank = ~flat.any(axis=2)
        return words, blank

    ow, oblank = headers(batch.obs)
    nw, nblank = headers(batch.next_obs)
    assert not nblank[:, -1].any(), "a next state ends in a blank frame"
    assert np.all(nw[:, -1, 0] == MAGIC)
    actor, env, seed, episode, step = (nw[:, -1, i].astype(np.int64) for i in range(1, 6))
    assert np.all(step >= 1), f"transitions {idx[step < 1]}: next frame is an episode's first frame"
    assert np.array_equal(batch.reward, (step % 7).astype(np.float32)), "a reward differs from the env's"
    for words, blank, last in ((ow, oblank, step - 1), (nw, nblank, step)):
        for k in range(rb.stack):
            want = last - (rb.stack - 1 - k)
            pad = want < 0
            assert np.all(blank[pad, k]), f"transitions {idx[pad & ~blank[:, k]]}: no zero padding before the start"
            real = ~pad
            got = words[real, k].astype(np.int64)
            expect = np.stack([np.full(real.sum(), MAGIC), actor[real], env[real], seed[real], episode[real],
                               want[real]], axis=1)
            bad = np.flatnonzero(np.any(got != expect, axis=1))
            assert not len(bad), (f"transition {idx[real][bad[0]]}: frame {got[bad[0]].tolist()} in a state of "
                                  f"{expect[bad[0]].tolist()}")
    done = (batch.terminated | batch.truncated).tolist()
    for key, st, d in zip(zip(actor.tolist(), env.tolist(), seed.tolist(), episode.tolist()), step.tolist(), done):
        steps_of[key].append(st)
        if d:
            ends[key].append(st)


Step = Tuple[int, int, int, int, int]  # (actor, env, seed, episode, step) of a step's next frame


def steps_sent(chunk) -> set:
    """The steps a chunk carries, read from its frames: the identities of its step rows' next frames
    (episode-start rows carry no step)."""
    seg = chunk["segments"]
    is_start = np.repeat(seg[:, 2].astype(bool), seg[:, 1] - seg[:, 0]) if len(seg) else np.zeros(0, bool)
    return {decode_frame(f) for f in chunk["frames"][~is_start]}


def steps_held(rb) -> set:
    """The steps whose transitions the replay can sample, read from their next states' last frames."""
    idx = rb.valid_indices()
    out = set()
    for lo in range(0, len(idx), 4096):
        for f in rb.gather(idx[lo:lo + 4096]).next_obs[:, -1]:
            out.add(decode_frame(f))
    return out


class FakePool:
    """What an Ingestor reads of its pool, without Ray: a test hands its chunks to ``_ingest``
    directly, as the ingest thread would (one-step uniform replay of 4-frame stacks)."""

    def __init__(self, num_actors: int, envs_per_actor: int, frame_shape=(36, 36)) -> None:
        self.actors = [None] * num_actors
        self.num_actors, self.envs_per_actor, self.num_streams = num_actors, envs_per_actor, num_actors * envs_per_actor
        self.prioritized, self.frame_shape, self.stack, self.pad = False, tuple(frame_shape), 4, "zero"

    def weights(self):
        return -1, None
