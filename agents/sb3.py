"""Stable-Baselines3's PPO, A2C and DQN as live baselines: trained through our command line
(`train.py sb3-ppo|sb3-a2c|sb3-dqn`) on our own env stack, so that they see exactly our protocol.

Box: SB3's own algorithm objects, with the rl-baselines3-zoo hyperparameters (hyperparams/{ppo,a2c,dqn}.yml,
"atari" and "CartPole-v1" entries) as presets. SB3 steps the envs through its own vector env
(DummyVecEnv or SubprocVecEnv) over `envs.make_single`, the same wrapper stack that our gymnasium
backends run: sticky actions, no-op starts, FIRE reset, max-pooled frame skip, 84x84x4 uint8, life loss
ending training episodes, clipped rewards, raw whole-game scores in `info`. SB3's vector envs autoreset in
the same step (the final observation rides in info), which is SB3's contract, so ours (NEXT_STEP,
`envs.make`) would break its buffers; env i is seeded seed + i as ours are.

The loop below is SB3's own `learn()` (on- and off-policy), unrolled so that it yields to our run layer
after every rollout: logging, evaluation and checkpoints are the ones our agents get. Checkpoints hold the
policy's and optimiser's tensors in safetensors like every other run; SB3's pickled zip is never needed
to resume or evaluate (see `export_zip` for the copy SB3's own tools can read).

Deviations from running the zoo: our env stack instead of SB3's AtariWrapper (sticky actions 0.25 by
default, as ours); finished games are logged once per rollout (up to 1,024 agent steps late for PPO).
A resumed run reloads weights, optimiser state and step count (so the zoo's linear schedules continue),
but SB3's replay buffer is not saved: a resumed sb3-dqn refills it for `learning_starts` steps first.
"""

from __future__ import annotations

import dataclasses
import functools
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import stable_baselines3 as sb3
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.sb2_compat.rmsprop_tf_like import RMSpropTFLike
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

import envs
import nets
from agents.common import check_config, crossings, num_discrete_actions
from agents.interface import AgentSpec
from envs.atari import STAT_LENGTH, STAT_SCORE, Mode


def _positive(cfg: Any, *names: str) -> None:
    check_config(cfg, positive=("frames", "num_envs", *names), unit=("gamma",))


@dataclass(frozen=True)
class PPOConfig:
    """SB3 PPO, with the zoo's "atari" hyperparameters (names as SB3's arguments)."""

    frames: int = 40_000_000
    """Training budget in emulator frames (the zoo's n_timesteps 1e7 agent steps x 4)."""
    num_envs: int = 8
    """Parallel envs (zoo n_envs)."""
    n_steps: int = 128
    """Steps per env per rollout."""
    n_epochs: int = 4
    """Passes over each rollout."""
    batch_size: int = 256
    """Minibatch size."""
    learning_rate: float = 2.5e-4
    """Adam learning rate (decays linearly to 0 when `anneal`: the zoo's lin_2.5e-4)."""
    clip_range: float = 0.1
    """Surrogate clip range (decays with the learning rate when `anneal`: lin_0.1)."""
    anneal: bool = True
    """The zoo's lin_ schedules: learning rate and clip range decay linearly to 0 over the budget."""
    ent_coef: float = 0.01
    """Entropy bonus coefficient."""
    vf_coef: float = 0.5
    """Value loss coefficient."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    net_arch: tuple[int, ...] = ()
    """Hidden sizes of the MLP policy on vector observations (empty: SB3's default, 64-64)."""

    @property
    def env_groups(self) -> int:
        return 1  # SB3's vector envs step all envs at once

    def __post_init__(self) -> None:
        _positive(self, "n_steps", "n_epochs", "batch_size", "learning_rate")


@dataclass(frozen=True)
class A2CConfig:
    """SB3 A2C, with the zoo's "atari" hyperparameters (RMSprop as TensorFlow's, eps 1e-5)."""

    frames: int = 40_000_000
    """Training budget in emulator frames (the zoo's n_timesteps 1e7 agent steps x 4)."""
    num_envs: int = 16
    """Parallel envs (zoo n_envs)."""
    n_steps: int = 5
    """Steps per env per update (SB3 default)."""
    learning_rate: float = 7e-4
    """RMSprop learning rate (SB3 default)."""
    ent_coef: float = 0.01
    """Entropy bonus coefficient."""
    vf_coef: float = 0.25
    """Value loss coefficient."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 1.0
    """GAE lambda (1: plain n-step returns, SB3 default)."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    rmsprop_tf_like: bool = True
    """SB3's RMSpropTFLike optimiser (eps 1e-5) as the zoo's Atari entry; False: torch's RMSprop."""
    net_arch: tuple[int, ...] = ()
    """Hidden sizes of the MLP policy on vector observations (empty: SB3's default, 64-64)."""

    @property
    def env_groups(self) -> int:
        return 1

    def __post_init__(self) -> None:
        _positive(self, "n_steps", "learning_rate")


@dataclass(frozen=True)
class DQNConfig:
    """SB3 DQN, with the zoo's "atari" hyperparameters. SB3's replay stores obs and next_obs apart: 100k
    Atari transitions take about 5.6 GB (ours store each frame once, design §1)."""

    frames: int = 40_000_000
    """Training budget in emulator frames (the zoo's n_timesteps 1e7 agent steps x 4)."""
    num_envs: int = 1
    """Parallel envs (zoo: 1)."""
    buffer_size: int = 100_000
    """Replay capacity in transitions."""
    learning_rate: float = 1e-4
    """Adam learning rate."""
    batch_size: int = 32
    """Minibatch size."""
    learning_starts: int = 100_000
    """Agent steps of random play before the first update."""
    target_update_interval: int = 1_000
    """Agent steps between target-network copies."""
    train_freq: int = 4
    """Agent steps between updates."""
    gradient_steps: int = 1
    """Updates each time."""
    exploration_fraction: float = 0.1
    """Fraction of the budget over which epsilon falls from 1 to `exploration_final_eps`."""
    exploration_final_eps: float = 0.01
    """Final exploration epsilon."""
    gamma: float = 0.99
    """Discount factor."""
    eval_epsilon: float = 0.05
    """Epsilon of evaluation games (design §3: 0.05 for the DQN family, as our dqn)."""
    net_arch: tuple[int, ...] = ()
    """Hidden sizes of the MLP Q-network on vector observations (empty: SB3's default, 64-64)."""

    @property
    def env_groups(self) -> int:
        return 1

    def __post_init__(self) -> None:
        _positive(self, "buffer_size", "learning_rate", "batch_size", "target_update_interval", "train_freq",
                  "gradient_steps")  # fmt: skip
        check_config(self, non_negative=("learning_starts",),
                     unit=("exploration_fraction", "exploration_final_eps", "eval_epsilon"))  # fmt: skip


def _sb3_kwargs(cfg: Any, pixels: bool) -> dict[str, Any]:
    """SB3 constructor arguments from a config (same names, plus the schedules and policy options)."""
    ours = {"frames", "num_envs", "anneal", "net_arch", "rmsprop_tf_like", "eval_epsilon"}
    kwargs = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name not in ours}
    policy_kwargs: dict[str, Any] = {}
    if cfg.net_arch and not pixels:
        policy_kwargs["net_arch"] = list(cfg.net_arch)
    if getattr(cfg, "anneal", False):
        kwargs["learning_rate"] = LinearSchedule(cfg.learning_rate, 0.0, 1.0)
        kwargs["clip_range"] = LinearSchedule(cfg.clip_range, 0.0, 1.0)
    if getattr(cfg, "rmsprop_tf_like", False):
        policy_kwargs |= {"optimizer_class": RMSpropTFLike, "optimizer_kwargs": {"eps": 1e-5}}
    return kwargs | ({"policy_kwargs": policy_kwargs} if policy_kwargs else {})


def make_vec_env(
    game: str, num_envs: int, *, seed: int = 0, backend: str = "auto", mode: Mode = "train",
    **options: Any,
) -> Any:  # fmt: skip
    """SB3's vector env over our wrapper stack: DummyVecEnv (backend sync, or auto for one env or classic
    control) or SubprocVecEnv (async/gymnasium, or auto for several Atari envs). Env i gets seed + i."""
    if backend in ("envpool", "ale"):
        raise ValueError(f"Stable-Baselines3 steps envs with its own vector env, not --backend {backend}; "
                         "use --backend sync, async or auto")  # fmt: skip
    kind = envs.resolve(game).kind
    subproc = backend in ("async", "gymnasium") or (backend == "auto" and kind == "atari" and num_envs > 1)
    worker = functools.partial(envs.make_single, game, mode=mode, **options)  # workers ignore Ctrl-C
    fns = [functools.partial(worker, env_index=i) for i in range(num_envs)]
    venv = SubprocVecEnv(fns) if subproc else DummyVecEnv(fns)
    venv.seed(seed)
    name = "SB3 SubprocVecEnv" if subproc else "SB3 DummyVecEnv"
    venv.metadata = {**(venv.metadata or {}), "backend": name, "backend_why": f"--backend {backend}"}
    return venv


class SB3Agent:
    """An SB3 algorithm behind our agent interface: evaluation actions, its state as tensors, and
    `update`, which runs SB3's own training step on SB3's own buffer."""

    def __init__(self, model: Any, num_actions: int, eval_epsilon: float = 0.0, seed: int = 0) -> None:
        self.model, self.num_actions, self.eval_epsilon = model, num_actions, eval_epsilon
        self.device = torch.device(model.device)
        self.rng = np.random.default_rng(seed)

    def eval_act(self, obs: np.ndarray, first: np.ndarray | None = None) -> np.ndarray:
        actions, _ = self.model.policy.predict(obs, deterministic=True)
        explore = self.rng.random(len(actions)) < self.eval_epsilon
        return np.where(explore, self.rng.integers(0, self.num_actions, len(actions)), actions)

    def update(self, batch: Any = None) -> dict[str, float]:
        """SB3's `train()` on what it collected; returns what it logged, under our metric names."""
        model = self.model
        if hasattr(model, "rollout_buffer"):
            model.train()
        else:
            model.train(gradient_steps=model.gradient_steps, batch_size=model.batch_size)
        logged = dict(model.logger.name_to_value)
        model.logger.dump()  # no output formats: this only clears SB3's logger
        names = METRIC_NAMES | ({"train/loss": "losses/td_loss"} if isinstance(model, sb3.DQN) else {})
        out = {names.get(k, "sb3/" + k): float(v) for k, v in logged.items()}
        if "train/entropy_loss" in logged:  # SB3 logs minus the entropy
            out["losses/entropy"] = -float(logged["train/entropy_loss"])
        return out

    def state_dict(self) -> dict[str, Any]:
        policy = self.model.policy
        return {"policy": policy.state_dict(), "optimizer": policy.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.policy.load_state_dict(state["policy"])
        if "optimizer" in state:
            self.model.policy.optimizer.load_state_dict(state["optimizer"])


METRIC_NAMES = {  # SB3's logger keys -> ours (design §5.3); others keep SB3's name under sb3/
    "train/policy_gradient_loss": "losses/policy",  # PPO
    "train/policy_loss": "losses/policy",  # A2C
    "train/value_loss": "losses/value",
    "train/approx_kl": "losses/approx_kl",
    "train/clip_fraction": "losses/clipfrac",
    "train/clip_range": "charts/clip",
    "train/learning_rate": "charts/learning_rate",
    "rollout/exploration_rate": "charts/epsilon",
}


def _maker(algo: str) -> Any:
    def make_agent(cfg: Any, env: Any, device: str = "auto", seed: int = 0) -> SB3Agent:
        """On SB3's vector env (training): the full algorithm. On any other env, e.g. the probe that
        evaluation builds with envs.make: the algorithm without env or buffers filled, as SB3's load does."""
        Algo = {"ppo": sb3.PPO, "a2c": sb3.A2C, "dqn": sb3.DQN}[algo]
        space = env.observation_space if isinstance(env, VecEnv) else env.single_observation_space
        num_actions = int(env.action_space.n) if isinstance(env, VecEnv) else num_discrete_actions(env, algo)
        pixels = len(space.shape) == 3
        policy = "CnnPolicy" if pixels else "MlpPolicy"
        kwargs = _sb3_kwargs(cfg, pixels) | {"device": str(nets.resolve_device(device)), "seed": seed}
        if isinstance(env, VecEnv):
            model = Algo(policy, env, verbose=0, **kwargs)
        else:
            model = Algo(policy, None, _init_setup_model=False, **kwargs)
            model.observation_space, model.action_space = space, env.single_action_space
            model.n_envs = env.num_envs
            if isinstance(cfg, DQNConfig):  # evaluation needs no replay: keep the unused buffer tiny
                model.buffer_size = 1
            model._setup_model()
        model.set_logger(Logger(folder=None, output_formats=[]))
        return SB3Agent(model, num_actions, getattr(cfg, "eval_epsilon", 0.0), seed)

    return make_agent


def export_zip(agent: SB3Agent, buffer: io.BytesIO) -> None:
    """SB3's own save format (a zip: JSON, pickled objects and torch files), for SB3's and the zoo's tools.
    Our runs never need it back; loading one runs pickle, so `pixelrl.checkpoint.verified_export` admits
    only the zips a run wrote (checked against the keyed signature its safetensors checkpoint records)."""
    agent.model.save(buffer)


def load_zip(data: bytes, cfg: Any, device: str = "auto") -> SB3Agent:
    """An agent from an exported zip's bytes, which `pixelrl.checkpoint.verified_export` has admitted."""
    algo = {PPOConfig: sb3.PPO, A2CConfig: sb3.A2C, DQNConfig: sb3.DQN}[type(cfg)]
    model = algo.load(io.BytesIO(data), device=str(nets.resolve_device(device)))
    return SB3Agent(model, int(model.action_space.n), getattr(cfg, "eval_epsilon", 0.0))


class FinishedGames(BaseCallback):
    """Keeps the raw score and length of every whole game (from our WholeGame wrapper's info, which SB3's
    vector envs pass through) until the loop hands them to the run layer."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, float]] = []

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if STAT_SCORE in info:
                self.rows.append({"episode_return": float(info[STAT_SCORE]),
                                  "episode_length": int(info[STAT_LENGTH])})  # fmt: skip
        return True

    def drain(self) -> list[dict[str, float]]:
        rows, self.rows = self.rows, []
        return rows


def train(
    cfg: Any, env: Any, agent: SB3Agent, *, total_steps: int, start_step: int = 0, seed: int = 0,
    log_every: int = 2_000,
) -> Any:  # fmt: skip
    """SB3's learn() loop, yielding (global_step, rows) after every rollout and its update. Steps count
    agent steps summed over envs, as SB3's num_timesteps and our global_step both do."""
    model = agent.model
    games = FinishedGames()
    _, callback = model._setup_learn(total_steps, games, reset_num_timesteps=True)
    model.num_timesteps = model._num_timesteps_at_start = start_step  # schedules continue on a resume
    on_policy = hasattr(model, "rollout_buffer")
    if not on_policy and start_step > 0:
        # The replay starts empty again: updates wait for it to refill, while the policy acts
        # epsilon-greedily (SB3 acts at random before its `learning_starts`, so the loop passes the config's).
        model.learning_starts = start_step + cfg.learning_starts
    callback.on_training_start(locals(), globals())
    stats: dict[str, float] = {}
    while model.num_timesteps < total_steps:
        before = model.num_timesteps
        if on_policy:
            if not model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps):
                break
            model._update_current_progress_remaining(model.num_timesteps, total_steps)
            stats = agent.update()
        else:
            rollout = model.collect_rollouts(
                model.env, train_freq=model.train_freq, action_noise=None, callback=callback,
                learning_starts=cfg.learning_starts, replay_buffer=model.replay_buffer, log_interval=None,
            )  # fmt: skip
            if not rollout.continue_training:
                break
            if model.num_timesteps > model.learning_starts:
                stats = agent.update()
        rows = games.drain()
        if stats and crossings(before, model.num_timesteps, log_every):
            rows.append(stats)
        yield model.num_timesteps, rows
    callback.on_training_end()


def _spec(name: str, algo: str, atari: Any, classic: Any) -> AgentSpec:
    return AgentSpec(
        name=name,
        Config=type(atari),
        presets={"atari": atari, "classic": classic},
        make_agent=_maker(algo),
        train=train,
        make_env=make_vec_env,
        export=export_zip,
        load_export=load_zip,
        resumable=("frames",),
    )


# Classic presets: the zoo's CartPole-v1 entries (frames = its n_timesteps; 1 frame per step there).
PPO_SPEC = _spec("sb3-ppo", "ppo", PPOConfig(), PPOConfig(
    frames=100_000, num_envs=8, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
    ent_coef=0.0, learning_rate=1e-3, clip_range=0.2))  # fmt: skip
A2C_SPEC = _spec("sb3-a2c", "a2c", A2CConfig(), A2CConfig(
    frames=500_000, num_envs=8, ent_coef=0.0, vf_coef=0.5, rmsprop_tf_like=False))  # fmt: skip
DQN_SPEC = _spec("sb3-dqn", "dqn", DQNConfig(), DQNConfig(
    frames=50_000, learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1_000,
    target_update_interval=10, train_freq=256, gradient_steps=128, exploration_fraction=0.16,
    exploration_final_eps=0.04, eval_epsilon=0.0, net_arch=(256, 256)))  # fmt: skip
SPECS = (PPO_SPEC, A2C_SPEC, DQN_SPEC)
