"""DQN on Atari with TorchRL's components (Collector, EGreedyModule, QValueActor, DQNLoss, HardUpdate),
laid out as TorchRL's own sota-implementations/dqn/dqn_atari.py is, with its replay buffer swapped
for dqnfast.torchrl_buffer.DqnfastTensorDictReplayBuffer.

What changes against TorchRL's script, and why:

- The buffer: ``DqnfastTensorDictReplayBuffer(capacity, stack=4, batch_size=...)`` in place of
  ``TensorDictReplayBuffer(storage=LazyMemmapStorage(...))``. It stores each frame once (TorchRL's
  stores two 4-frame stacks per transition) and rebuilds the stacks when it samples.
- The frames stay uint8 up to the model, which divides by 255: TorchRL's script turns them into
  floats (ToTensorImage, then VecNorm), which no frame store can hold as bytes. The 84x84 grayscale
  frames come from gymnasium's AtariPreprocessing, wrapped with TorchRL's GymWrapper; CatFrames
  stacks them for the policy, as in TorchRL's script.
- Everything else is TorchRL's recipe: EndOfLifeTransform's ("next", "end-of-life") as the loss's
  done/terminated keys (the buffer stores that entry with the others), sign-clipped rewards, a
  hard target update, an epsilon-greedy collector.

    python examples/torchrl_dqn_atari.py --total-frames 10000000

Needs torch, torchrl, gymnasium and ale-py (pip install "dqnfast[torchrl,atari]").
"""
from __future__ import annotations

import argparse
import time
import warnings

import ale_py
import gymnasium as gym
import torch
import torch.nn as nn

with warnings.catch_warnings():  # torchrl 0.14's collectors module warns about its own deprecated classes
    warnings.simplefilter("ignore", DeprecationWarning)
    from torchrl.collectors import Collector
from tensordict.nn import TensorDictSequential
from torchrl.envs import (CatFrames, EndOfLifeTransform, GymWrapper, RenameTransform, RewardSum, SignTransform,
                          StepCounter, TransformedEnv, UnsqueezeTransform)
from torchrl.modules import EGreedyModule, QValueActor
from torchrl.objectives import DQNLoss, HardUpdate

from dqnfast.torchrl_buffer import DqnfastTensorDictReplayBuffer  # was: TensorDictReplayBuffer + LazyMemmapStorage

gym.register_envs(ale_py)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env-id", default="BreakoutNoFrameskip-v4")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--total-frames", type=int, default=10_000_000, help="agent steps (4 emulator frames each)")
    p.add_argument("--frames-per-batch", type=int, default=400, help="agent steps per collector batch")
    p.add_argument("--init-random-frames", type=int, default=50_000, help="agent steps before learning")
    p.add_argument("--buffer-size", type=int, default=1_000_000, help="frame slots (about one per agent step)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--num-updates", type=int, default=100, help="gradient steps per collector batch")
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--lr", type=float, default=2.5e-4)
    p.add_argument("--hard-update-freq", type=int, default=10_000, help="gradient steps between target syncs")
    p.add_argument("--eps-start", type=float, default=1.0)
    p.add_argument("--eps-end", type=float, default=0.01)
    p.add_argument("--annealing-frames", type=int, default=1_000_000)
    p.add_argument("--max-steps", type=int, default=27_000, help="agent steps per episode before truncation")
    p.add_argument("--device", default=None)
    return p.parse_args()


def make_env(env_id: str, seed: int, max_steps: int, device):
    env = gym.make(env_id)  # NoFrameskip: AtariPreprocessing skips the frames
    env = gym.wrappers.AtariPreprocessing(env, noop_max=30, frame_skip=4, screen_size=84, grayscale_obs=True)
    env = TransformedEnv(GymWrapper(env, device=device, categorical_action_encoding=True))
    env.append_transform(RenameTransform(["observation"], ["pixels"]))
    env.append_transform(UnsqueezeTransform(-3, in_keys=["pixels"]))  # (84, 84) -> (1, 84, 84), uint8
    env.append_transform(EndOfLifeTransform())
    env.append_transform(SignTransform(in_keys=["reward"]))
    env.append_transform(CatFrames(N=4, dim=-3))  # (4, 84, 84); padding="same" is the buffer's pad="first"
    env.append_transform(RewardSum())
    env.append_transform(StepCounter(max_steps=max_steps))
    env.set_seed(seed)
    return env


class NatureCNN(nn.Module):
    """Mnih et al. 2015's network on uint8 stacks (scaled to [0, 1] here rather than in the env)."""

    def __init__(self, n_actions: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(4, 32, 8, stride=4), nn.ReLU(), nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(), nn.Flatten(), nn.Linear(3136, 512), nn.ReLU(),
            nn.Linear(512, n_actions))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.float() / 255.0
        return self.net(x.unsqueeze(0)).squeeze(0) if x.ndim == 3 else self.net(x)  # the collector's env is unbatched


def main() -> None:
    args = parse_args()
    torch.manual_seed(args.seed)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    env = make_env(args.env_id, args.seed, args.max_steps, "cpu")
    action_spec = env.action_spec
    model = QValueActor(NatureCNN(action_spec.space.n).to(device), in_keys=["pixels"], spec=action_spec.to(device))
    greedy = EGreedyModule(action_spec, annealing_num_steps=args.annealing_frames, eps_init=args.eps_start,
                           eps_end=args.eps_end, device=device)
    policy = TensorDictSequential(model, greedy)

    rb = DqnfastTensorDictReplayBuffer(args.buffer_size, stack=4, batch_size=args.batch_size, seed=args.seed)
    rb.append_transform(lambda td: td.to(device))  # as TorchRL's script: the sample goes to the learner's device

    loss_module = DQNLoss(value_network=model, loss_function="l2", delay_value=True)
    loss_module.set_keys(done="end-of-life", terminated="end-of-life")
    loss_module.make_value_estimator(gamma=args.gamma)
    target_updater = HardUpdate(loss_module, value_network_update_interval=args.hard_update_freq)
    optimizer = torch.optim.Adam(loss_module.parameters(), lr=args.lr)

    collector = Collector(env, policy, frames_per_batch=args.frames_per_batch, total_frames=args.total_frames,
                          device="cpu", storing_device="cpu", init_random_frames=args.init_random_frames,
                          auto_register_policy_transforms=False)  # (the policy needs no InitTracker)
    start, collected, updates, last_loss = time.time(), 0, 0, float("nan")
    for data in collector:
        data = data.reshape(-1)  # as TorchRL's script: a flat batch (one env here)
        collected += data.numel()
        greedy.step(data.numel())
        rb.extend(data)
        ended = data["next", "done"].reshape(-1)
        for r, n in zip(data["next", "episode_reward"].reshape(-1)[ended], data["next", "step_count"].reshape(-1)[ended]):
            print(f"step={collected} episode_reward={r.item():.0f} episode_length={n.item()}", flush=True)
        if collected < args.init_random_frames:
            continue
        for _ in range(args.num_updates):
            sample = rb.sample()
            loss = loss_module(sample)["loss"]
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(loss_module.parameters(), max_norm=10)
            optimizer.step()
            target_updater.step()
            updates += 1
            last_loss = loss.item()
        print(f"step={collected} updates={updates} loss={last_loss:.4f} eps={greedy.eps.item():.3f} "
              f"SPS={collected / (time.time() - start):.0f}", flush=True)
        collector.update_policy_weights_()
    collector.shutdown()
    print(f"done: steps={collected} updates={updates} buffer_transitions={len(rb)} last_loss={last_loss:.4f} "
          f"seconds={time.time() - start:.1f}", flush=True)


if __name__ == "__main__":
    main()
