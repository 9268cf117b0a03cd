"""DRQN: the recurrent Q-network, sequence targets and masks, and a memory task it must learn."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dqnfast import ReplayBuffer, SequenceBatch  # noqa: E402
from dqnfast.recurrent import DRQNLearner, RecurrentQNetwork  # noqa: E402

SHAPE = (36, 36)  # the smallest frame the Nature CNN takes: keeps these tests fast


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_network_shapes_and_state_reset_at_episode_starts():
    torch.manual_seed(0)
    net = RecurrentQNetwork(3, SHAPE, hidden=32)
    frames = torch.randint(0, 255, (2, 5, *SHAPE), dtype=torch.uint8)
    q, (h, c) = net(frames)
    assert q.shape == (2, 5, 3) and h.shape == c.shape == (2, 32)
    starts = torch.zeros(2, 5, dtype=torch.bool)
    starts[:, 2] = True  # an episode starts at step 2: what came before must not matter
    q_reset, _ = net(frames, None, starts)
    q_fresh, _ = net(frames[:, 2:])
    torch.testing.assert_close(q_reset[:, 2:], q_fresh)
    assert not torch.allclose(q[:, 2:], q_fresh)  # without the reset the history does matter
    q_step, state = net(frames[:, :1])  # stepping one frame at a time equals the unrolled sequence
    q_next, _ = net(frames[:, 1:2], state)
    torch.testing.assert_close(torch.cat([q_step, q_next], 1), q[:, :2])


def seq_batch(frames, action, reward, terminated, truncated, mask):
    b, t = action.shape
    return SequenceBatch(frames=frames, action=action, reward=reward.astype(np.float32), terminated=terminated,
                         truncated=truncated, mask=mask, index=np.zeros(b, np.int64))


def random_seq(rng, b=4, t=5):
    mask = np.ones((b, t), bool)
    mask[0, :2] = False  # row 0: the episode starts at frame 2
    return seq_batch(rng.integers(0, 255, (b, t + 1, *SHAPE), dtype=np.uint8), rng.integers(0, 3, (b, t)),
                     rng.normal(size=(b, t)), np.zeros((b, t), bool), np.zeros((b, t), bool), mask)


@pytest.mark.parametrize("double", [False, True])
def test_sequence_targets_bootstrap_unless_terminated(double):
    rng = np.random.default_rng(0)
    learner = DRQNLearner(3, frame_shape=SHAPE, gamma=0.9, hidden=32, double_dqn=double, seed=0, device="cpu")
    seq = random_seq(rng)
    seq.terminated[1, -1] = True
    seq.truncated[2, -1] = True
    frames = torch.from_numpy(seq.frames)
    with torch.no_grad():
        real = np.concatenate([seq.mask, np.ones((4, 1), bool)], 1)
        starts = torch.from_numpy(real & ~np.concatenate([np.zeros((4, 1), bool), real[:, :-1]], 1))
        qt, _ = learner.target_network(frames, None, starts)
        qo, _ = learner.q_network(frames, None, starts)
    best = (qo if double else qt)[:, 1:].argmax(2, keepdim=True)
    nxt = qt[:, 1:].gather(2, best).squeeze(2).numpy()
    want = seq.reward + 0.9 * (1 - seq.terminated) * nxt
    np.testing.assert_allclose(learner.sequence_targets(seq), want, rtol=1e-5, atol=1e-6)
    assert learner.sequence_targets(seq)[1, -1] == pytest.approx(seq.reward[1, -1])  # terminated: no bootstrap
    assert learner.sequence_targets(seq)[2, -1] != pytest.approx(seq.reward[2, -1])  # truncated: bootstraps


def test_masked_and_burn_in_steps_carry_no_loss():
    rng = np.random.default_rng(1)
    seq = random_seq(rng)

    def loss_after(change):
        learner = DRQNLearner(3, frame_shape=SHAPE, hidden=32, burn_in=1, seed=0, device="cpu", learning_rate=1e-3)
        s = seq._replace(reward=seq.reward.copy(), action=seq.action.copy())
        change(s)
        return learner.update(s)["td_loss"]

    base = loss_after(lambda s: None)
    assert loss_after(lambda s: s.reward.__setitem__((0, 0), 99.0)) == pytest.approx(base)  # masked step
    assert loss_after(lambda s: s.reward.__setitem__((3, 0), 99.0)) == pytest.approx(base)  # burn-in step
    assert loss_after(lambda s: s.reward.__setitem__((3, 2), 99.0)) != pytest.approx(base)  # a real step counts


class CueMemory:
    """A memory task no frame-stack-free agent can solve: the first frame shows a cue (left or right
    half lit), then `delay` blank frames, then a question frame (centre lit). Answering the question
    with the cue's side (action 0 or 1) gives +1, the other -1; earlier actions give 0."""

    def __init__(self, delay: int = 2, seed: int = 0) -> None:
        self.delay, self.rng = delay, np.random.default_rng(seed)

    def frame(self, kind: str) -> np.ndarray:
        f = np.zeros(SHAPE, np.uint8)
        if kind == "left":
            f[:, :18] = 255
        elif kind == "right":
            f[:, 18:] = 255
        elif kind == "question":
            f[12:24, 12:24] = 255
        return f

    def reset(self) -> np.ndarray:
        self.cue, self.t = int(self.rng.integers(2)), 0
        return self.frame("left" if self.cue == 0 else "right")

    def step(self, action: int):
        self.t += 1
        if self.t <= self.delay:
            return self.frame("blank"), 0.0, False
        if self.t == self.delay + 1:
            return self.frame("question"), 0.0, False
        return self.frame("blank"), (1.0 if action == self.cue else -1.0), True


def play(learner, env, rb, episodes, epsilon):
    total = 0.0
    for _ in range(episodes):
        frame = env.reset()
        if rb is not None:
            rb.start_episode(frame)
        state, done = None, False
        while not done:
            action, state = learner.act(frame, epsilon, state)
            frame, reward, done = env.step(action)
            total += reward
            if rb is not None:
                rb.add(action, reward, frame, done)
    return total / episodes


@pytest.mark.slow  # learns a task: thousands of updates
def test_drqn_learns_a_memory_task_from_a_seed():
    torch.manual_seed(0)
    env = CueMemory(delay=2, seed=0)
    rb = ReplayBuffer(4000, SHAPE, stack=1, seed=0)
    learner = DRQNLearner(2, frame_shape=SHAPE, gamma=0.9, hidden=64, learning_rate=1e-3,
                          target_update_interval=50, seed=0, device="cpu")
    play(learner, env, rb, 100, epsilon=1.0)  # random warm-up
    before = play(learner, CueMemory(seed=1), None, 100, epsilon=0.0)
    for it in range(300):
        learner.update(rb.sample_sequences(32, 4))  # 4 steps: the whole episode
        if it % 10 == 0:
            play(learner, env, rb, 5, epsilon=0.3)
    after = play(learner, CueMemory(seed=1), None, 200, epsilon=0.0)
    assert abs(before) < 0.5  # chance: the answer is +-1 at random
    assert after >= 0.9, after  # remembers the cue across the blank frames


def test_bad_input():
    learner = DRQNLearner(2, frame_shape=SHAPE, hidden=16, device="cpu")
    with pytest.raises(ValueError, match="frame must have shape"):
        learner.act(np.zeros((4, *SHAPE), np.uint8)[:, :5], 0.1)
    with pytest.raises(TypeError, match="frame must have dtype uint8"):
        learner.act(np.zeros(SHAPE, np.float32), 0.1)
    with pytest.raises(TypeError, match="SequenceBatch"):
        learner.update(np.zeros(3))
    with pytest.raises(ValueError, match="gamma must be in"):
        DRQNLearner(2, frame_shape=SHAPE, gamma=1.5)
    with pytest.raises(ValueError, match="burn_in"):
        DRQNLearner(2, frame_shape=SHAPE, burn_in=-1)
    for option in (dict(dueling=True), dict(network="dopamine"), dict(intensity=0.05)):  # (not ignored in silence)
        with pytest.raises(ValueError, match=f"{next(iter(option))}=.* feed-forward DQN learner"):
            DRQNLearner(2, frame_shape=SHAPE, hidden=16, device="cpu", **option)
    DRQNLearner(2, frame_shape=SHAPE, hidden=16, device="cpu", dueling=False, network="nature", intensity=0.0)
    with pytest.raises(ValueError, match="leave no step after burn_in"):
        DRQNLearner(2, frame_shape=SHAPE, hidden=16, burn_in=5, device="cpu").update(random_seq(np.random.default_rng(0)))
