"""CleanRL-style DQN on Atari Breakout, with dqnfast.ReplayBuffer as the replay memory.

Read it top to bottom: arguments, env, Q-network, then one loop that acts, stores and learns.
What dqnfast changes against CleanRL's dqn_atari.py: no FrameStack wrapper and no SB3 buffer. The
env returns single 84x84 frames; the buffer stores each frame once, and `rb.stacked()` is the
4-frame state the agent acts on (the same stack `rb.sample` later returns for that transition).
Truncation (the time limit) is stored apart from termination, so its target still bootstraps.

    python examples/cleanrl_dqn.py --total-timesteps 10000000

Needs torch, gymnasium and ale-py (pip install "dqnfast[train]").
"""
from __future__ import annotations

import argparse
import random
import time

import ale_py
import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from gymnasium.wrappers import AtariPreprocessing

import dqnfast
from dqnfast.batch import shared_frames


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env-id", default="ALE/Breakout-v5")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--total-timesteps", type=int, default=10_000_000)
    p.add_argument("--max-episode-frames", type=int, default=108_000, help="time limit in emulator frames")
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--buffer-size", type=int, default=1_000_000, help="frame slots in the replay buffer")
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--target-network-frequency", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--start-e", type=float, default=1.0)
    p.add_argument("--end-e", type=float, default=0.01)
    p.add_argument("--exploration-fraction", type=float, default=0.10)
    p.add_argument("--learning-starts", type=int, default=80_000)
    p.add_argument("--train-frequency", type=int, default=4)
    p.add_argument("--stack", type=int, default=4, help="frames per state")
    p.add_argument("--cuda", action=argparse.BooleanOptionalAction, default=True)
    return p.parse_args()


def make_env(env_id: str, seed: int, max_episode_frames: int) -> gym.Env:
    gym.register_envs(ale_py)
    # frameskip=1 in the ALE so that AtariPreprocessing does the skipping (and max-pools the last two
    # frames); sticky actions as in the v5 default, stated explicitly.
    env = gym.make(env_id, frameskip=1, repeat_action_probability=0.25, max_episode_steps=max_episode_frames)
    env = AtariPreprocessing(env, noop_max=30, frame_skip=4, screen_size=84, terminal_on_life_loss=False,
                             grayscale_obs=True)  # -> (84, 84) uint8 frames
    env.action_space.seed(seed)
    return env


class QNetwork(nn.Module):
    """The Nature DQN network: (B, stack, 84, 84) uint8 -> (B, n_actions) Q-values."""

    def __init__(self, stack: int, n_actions: int) -> None:
        super().__init__()
        self.network = nn.Sequential(
            nn.Conv2d(stack, 32, 8, stride=4), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(3136, 512), nn.ReLU(),
            nn.Linear(512, n_actions),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x / 255.0)


def linear_schedule(start_e: float, end_e: float, duration: float, t: int) -> float:
    slope = (end_e - start_e) / duration
    return max(slope * t + start_e, end_e)


def main() -> None:
    args = parse_args()
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")

    env = make_env(args.env_id, args.seed, args.max_episode_frames)
    n_actions = int(env.action_space.n)
    q_network = QNetwork(args.stack, n_actions).to(device)
    optimizer = torch.optim.Adam(q_network.parameters(), lr=args.learning_rate)
    target_network = QNetwork(args.stack, n_actions).to(device)
    target_network.load_state_dict(q_network.state_dict())

    rb = dqnfast.ReplayBuffer(capacity=args.buffer_size, frame_shape=(84, 84), stack=args.stack, seed=args.seed)
    # One batch, reused by every sample (no allocation per update). With 1-step targets next_obs is
    # obs shifted by one frame, so both are views of one (B, stack + 1, 84, 84) array: each frame is
    # copied once, and it crosses to the device once.
    batch = rb.empty_batch(args.batch_size, shared_frames=True)

    start_time = time.time()
    frame, _ = env.reset(seed=args.seed)
    rb.start_episode(frame)  # every episode begins with its first frame
    episode_return, episode_length, updates, last_loss = 0.0, 0, 0, float("nan")
    for global_step in range(args.total_timesteps):
        # ACT: epsilon-greedy on the stacked state the buffer holds for this env.
        epsilon = linear_schedule(args.start_e, args.end_e, args.exploration_fraction * args.total_timesteps,
                                  global_step)
        if random.random() < epsilon:
            action = env.action_space.sample()
        else:
            state = torch.from_numpy(rb.stacked()).to(device)
            with torch.no_grad():
                action = int(q_network(state[None]).argmax(dim=1).item())

        # STEP and STORE: only the new frame goes in; the reward is clipped as in the DQN paper.
        next_frame, reward, terminated, truncated, _ = env.step(action)
        rb.add(action, float(np.sign(reward)), next_frame, terminated, truncated)
        episode_return += float(reward)
        episode_length += 1
        if terminated or truncated:
            print(f"global_step={global_step}, episodic_return={episode_return}, episodic_length={episode_length}",
                  flush=True)
            frame, _ = env.reset()
            rb.start_episode(frame)  # after either kind of end, before the next add
            episode_return, episode_length = 0.0, 0

        # LEARN: sample stacked transitions; only `terminated` stops the bootstrap.
        if global_step > args.learning_starts and global_step % args.train_frequency == 0:
            data = rb.sample(args.batch_size, out=batch)
            frames = torch.from_numpy(shared_frames(data)).to(device)
            obs, next_obs = frames[:, :-1], frames[:, 1:]
            actions = torch.from_numpy(data.action).to(device)
            rewards = torch.from_numpy(data.reward).to(device)
            not_done = 1.0 - torch.from_numpy(data.terminated).to(device, torch.float32)
            with torch.no_grad():
                target_max, _ = target_network(next_obs).max(dim=1)
                td_target = rewards + args.gamma * target_max * not_done
            old_val = q_network(obs).gather(1, actions[:, None]).squeeze(1)
            loss = F.mse_loss(td_target, old_val)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            updates += 1
            last_loss = loss.item()
            if updates % 100 == 0:
                sps = int(global_step / (time.time() - start_time))
                print(f"global_step={global_step}, td_loss={last_loss:.4f}, q={old_val.mean().item():.3f}, "
                      f"SPS={sps}", flush=True)

        # Hard target update, as CleanRL does with tau=1.
        if global_step % args.target_network_frequency == 0:
            target_network.load_state_dict(q_network.state_dict())

    env.close()
    print(f"done: steps={args.total_timesteps} updates={updates} buffer_transitions={len(rb)} "
          f"last_loss={last_loss:.4f} seconds={time.time() - start_time:.1f}", flush=True)


if __name__ == "__main__":
    main()
