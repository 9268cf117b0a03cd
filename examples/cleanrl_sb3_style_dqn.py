"""CleanRL-style DQN on Atari Breakout, written as gymnasium 1.x CleanRL scripts are, with
dqnfast.sb3.DqnfastReplayBuffer swapped in for Stable-Baselines3's ReplayBuffer.

Everything else is the usual recipe: gymnasium's own wrappers (AtariPreprocessing, then
FrameStackObservation with its default first-frame padding), a SyncVectorEnv, and SB3's buffer
calling convention: `rb.add(obs, real_next_obs, actions, rewards, terminations, infos)` with
gymnasium's dict-of-arrays infos and `rb.sample(batch_size)` returning SB3's ReplayBufferSamples.
The one changed line is the buffer's class; it stores each 84x84 frame once instead of two whole
4-frame stacks per transition, and checks on every add that the stacks it rebuilds are exact.

    python examples/cleanrl_sb3_style_dqn.py --total-timesteps 10000000

Needs torch, gymnasium, ale-py, opencv and stable-baselines3 (pip install "dqnfast[train,test]").
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

from dqnfast.sb3 import DqnfastReplayBuffer  # was: from stable_baselines3.common.buffers import ReplayBuffer

gym.register_envs(ale_py)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env-id", default="BreakoutNoFrameskip-v4")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--total-timesteps", type=int, default=10_000_000, help="vector steps")
    p.add_argument("--num-envs", type=int, default=1)
    p.add_argument("--autoreset-mode", choices=["same-step", "next-step"], default="same-step",
                   help="the vector env's autoreset mode (the buffer detects it from the infos)")
    p.add_argument("--max-episode-frames", type=int, default=108_000, help="time limit in emulator frames")
    p.add_argument("--learning-rate", type=float, default=1e-4)
    p.add_argument("--buffer-size", type=int, default=1_000_000)
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--tau", type=float, default=1.0)
    p.add_argument("--target-network-frequency", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--start-e", type=float, default=1.0)
    p.add_argument("--end-e", type=float, default=0.01)
    p.add_argument("--exploration-fraction", type=float, default=0.10)
    p.add_argument("--learning-starts", type=int, default=80_000)
    p.add_argument("--train-frequency", type=int, default=4)
    p.add_argument("--cuda", action=argparse.BooleanOptionalAction, default=True)
    return p.parse_args()


def make_env(env_id: str, seed: int, max_episode_frames: int):
    def thunk() -> gym.Env:
        env = gym.make(env_id, max_episode_steps=max_episode_frames)  # NoFrameskip: one step = one frame
        env = gym.wrappers.RecordEpisodeStatistics(env)
        env = gym.wrappers.AtariPreprocessing(env, noop_max=30, frame_skip=4, screen_size=84, grayscale_obs=True,
                                              terminal_on_life_loss=False)
        env = gym.wrappers.TransformReward(env, lambda r: float(np.sign(r)))  # reward clipping
        env = gym.wrappers.FrameStackObservation(env, 4)  # (4, 84, 84); padding_type="reset"
        env.action_space.seed(seed)
        return env

    return thunk


class QNetwork(nn.Module):
    def __init__(self, n_actions: int) -> None:
        super().__init__()
        self.network = nn.Sequential(
            nn.Conv2d(4, 32, 8, stride=4), nn.ReLU(),
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

    mode = {"same-step": gym.vector.AutoresetMode.SAME_STEP, "next-step": gym.vector.AutoresetMode.NEXT_STEP}
    envs = gym.vector.SyncVectorEnv(
        [make_env(args.env_id, args.seed + i, args.max_episode_frames) for i in range(args.num_envs)],
        autoreset_mode=mode[args.autoreset_mode])
    assert isinstance(envs.single_action_space, gym.spaces.Discrete), "only discrete action space is supported"
    same_step = envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP

    q_network = QNetwork(envs.single_action_space.n).to(device)
    optimizer = torch.optim.Adam(q_network.parameters(), lr=args.learning_rate)
    target_network = QNetwork(envs.single_action_space.n).to(device)
    target_network.load_state_dict(q_network.state_dict())

    rb = DqnfastReplayBuffer(
        args.buffer_size,
        envs.single_observation_space,
        envs.single_action_space,
        device,
        n_envs=args.num_envs,
        optimize_memory_usage=True,  # accepted; this buffer always stores each frame once
        handle_timeout_termination=False,
    )
    start_time = time.time()

    obs, _ = envs.reset(seed=args.seed)
    updates, episode_ends, truncations, last_loss = 0, 0, 0, float("nan")
    for global_step in range(args.total_timesteps):
        epsilon = linear_schedule(args.start_e, args.end_e, args.exploration_fraction * args.total_timesteps,
                                  global_step)
        if random.random() < epsilon:
            actions = np.array([envs.single_action_space.sample() for _ in range(envs.num_envs)])
        else:
            with torch.no_grad():
                q_values = q_network(torch.as_tensor(obs, device=device))
            actions = torch.argmax(q_values, dim=1).cpu().numpy()

        next_obs, rewards, terminations, truncations_now, infos = envs.step(actions)

        # Episode statistics: in infos["final_info"] (SAME_STEP) or in infos itself (NEXT_STEP).
        stats = infos.get("final_info", {}) if same_step else infos
        if "episode" in stats:
            for i in np.flatnonzero(stats["_episode"]):
                print(f"global_step={global_step}, episodic_return={stats['episode']['r'][i]}, "
                      f"episodic_length={stats['episode']['l'][i]}", flush=True)

        # Save data to the replay buffer. SAME_STEP: next_obs of an ended env is already the next
        # episode's first observation, so a truncated env's real one comes from infos["final_obs"].
        # NEXT_STEP: next_obs is the real one, and the step after an episode end is a "reset step"
        # (action ignored) that the buffer recognises and does not store.
        real_next_obs = next_obs.copy()
        for idx, trunc in enumerate(truncations_now):
            if trunc and same_step:
                real_next_obs[idx] = infos["final_obs"][idx]
        rb.add(obs, real_next_obs, actions, rewards, terminations, infos)
        truncations += int(truncations_now.sum())
        episode_ends += int((terminations | truncations_now).sum())
        obs = next_obs

        if global_step > args.learning_starts:
            if global_step % args.train_frequency == 0:
                data = rb.sample(args.batch_size)
                with torch.no_grad():
                    target_max, _ = target_network(data.next_observations).max(dim=1)
                    td_target = data.rewards.flatten() + args.gamma * target_max * (1 - data.dones.flatten())
                old_val = q_network(data.observations).gather(1, data.actions).squeeze(1)
                loss = F.mse_loss(td_target, old_val)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                updates += 1
                last_loss = loss.item()
                if updates % 100 == 0:
                    print(f"global_step={global_step}, td_loss={last_loss:.4f}, q={old_val.mean().item():.3f}, "
                          f"SPS={int(global_step / (time.time() - start_time))}", flush=True)

            if global_step % args.target_network_frequency == 0:
                for target_param, q_param in zip(target_network.parameters(), q_network.parameters()):
                    target_param.data.copy_(args.tau * q_param.data + (1.0 - args.tau) * target_param.data)

    envs.close()
    print(f"done: steps={args.total_timesteps} updates={updates} buffer_transitions={len(rb.store)} "
          f"episode_ends={episode_ends} truncations={truncations} pad={rb.pad} autoreset={rb.autoreset_mode} last_loss={last_loss:.4f} "
          f"seconds={time.time() - start_time:.1f}", flush=True)


if __name__ == "__main__":
    main()
