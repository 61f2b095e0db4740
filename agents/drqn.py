"""DRQN: deep recurrent Q-learning (Hausknecht & Stone 2015, "Deep Recurrent Q-Learning for POMDPs"), trained
as R2D2 trains it (Kapturowski et al. 2019, "Recurrent Experience Replay in Distributed RL").

Algorithm box: the Q-function is an encoder (Nature CNN on single frames, or an MLP on vectors), an LSTM and
a Q head. The actor carries each env's LSTM state, zeroed where an episode starts, and runs the network on
every step, exploring or not, so that its memory follows what it saw. Replay stores the frames once and,
every `seq_stride` steps, the actor's state (agents/sequence_replay.py). Every `train_every` agent steps,
on B sequences of burn_in + seq_len (+ n_step) steps starting from their stored states:
    burn-in:  run the online network over the first `burn_in` steps without gradient (warms the stale state)
    targets:  y_t = R_t^(n) + gamma^n (1 - terminated) Q_target(s_{t+n}, argmax_a Q(s_{t+n}, a))   (double)
              with the target network unrolled over the whole window from the same stored state
    loss:     Huber (MSE on CartPole) of Q(s_t, a_t) - y_t averaged over the seq_len learned steps that
              belong to the episode in progress (the mask), with Adam;
    sync:     Q copied into Q_target every `target_update_every` agent steps.

Deviations: from Hausknecht & Stone, stored states with burn-in instead of zero-state random updates, double
Q and n-step returns (R2D2). From R2D2: one actor process, uniform instead of prioritized sequence replay,
no value-function rescaling (Atari rewards are clipped instead, as in DQN), sizes for a single machine.
An episode start inside the burn-in is allowed (the state is zeroed there, as the actor's was).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from torch import nn

import envs
import nets
from agents.common import (
    ConfigError,
    check_config,
    check_precision,
    crossings,
    linear_schedule,
    num_discrete_actions,
)
from agents.dqn import td_targets
from agents.interface import AgentSpec
from agents.sequence_replay import SequenceReplay, Sequences

State = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (1, N, lstm_hidden)


@dataclass(frozen=True)
class Config:
    """DRQN hyperparameters. Defaults are the Atari preset; `PRESETS["classic"]` holds CartPole's."""

    frames: int = 6_000_000
    """Training budget in emulator frames (agent steps x 4 on Atari)."""
    num_envs: int = 4
    """Envs stepped together; each vector step adds num_envs transitions."""
    buffer_size: int = 100_000
    """Replay capacity in transitions (single frames stored once, ~0.7 GB on Atari)."""
    batch_size: int = 16
    """Sequences per gradient step (R2D2: 64; 16 x 40 learned steps suits one CPU)."""
    lr: float = 1e-4
    """Adam learning rate (R2D2)."""
    adam_eps: float = 1e-3
    """Adam epsilon (R2D2)."""
    gamma: float = 0.99
    """Discount factor (R2D2 uses 0.997 with value rescaling, which we do not have)."""
    learning_starts: int = 20_000
    """Transitions collected before the first update."""
    train_every: int = 80
    """Agent steps between gradient steps: 16 sequences x 40 learned steps every 80 steps replays each step
    ~8 times, DQN's ratio (32 transitions every 4 steps)."""
    gradient_steps: int = 1
    """Gradient steps each time training is due."""
    target_update_every: int = 10_000
    """Agent steps between hard copies of Q into the target network (R2D2: 2,500 updates)."""
    eps_start: float = 1.0
    """Initial exploration rate."""
    eps_end: float = 0.01
    """Final exploration rate."""
    eps_decay_steps: int = 250_000
    """Agent steps over which epsilon decays linearly."""
    eval_epsilon: float = 0.05
    """Exploration rate when evaluating (Mnih et al. 2015)."""
    double: bool = True
    """Double DQN targets (R2D2)."""
    dueling: bool = False
    """Dueling head: Q = V + A - mean(A) (R2D2 uses it)."""
    n_step: int = 5
    """Steps of real rewards before bootstrapping (R2D2: 5)."""
    loss: str = "huber"
    """huber or mse."""
    max_grad_norm: float = 10.0
    """Gradient norm clip."""
    hidden: tuple[int, ...] = (256,)
    """MLP widths of the encoder for vector observations (pixels use the Nature CNN)."""
    lstm_hidden: int = 512
    """LSTM units (Hausknecht & Stone 2015 and R2D2: 512)."""
    burn_in: int = 20
    """Steps at a sequence's start that only warm the stored state up, without loss or gradient (R2D2: 40
    of 80)."""
    seq_len: int = 40
    """Steps per sequence that are learned from, after the burn-in."""
    seq_stride: int = 20
    """Steps between sequence starts in each env's stream, where the actor's state is stored (R2D2: half
    the sequence, so that sequences overlap by half)."""
    precision: str = "auto"
    """Network precision: auto, bf16, fp32 or tf32 (nets.choose_precision); the LSTM state stays float32."""

    def __post_init__(self) -> None:
        check_config(
            self,
            positive=("frames", "num_envs", "buffer_size", "batch_size", "lr", "adam_eps", "gamma",
                      "train_every", "gradient_steps", "target_update_every", "n_step", "max_grad_norm",
                      "lstm_hidden", "seq_len", "seq_stride"),
            non_negative=("learning_starts", "eps_decay_steps", "burn_in"),
            unit=("gamma", "eps_start", "eps_end", "eval_epsilon"),
        )  # fmt: skip
        if self.seq_stride > self.seq_len:
            raise ConfigError(f"--seq-stride {self.seq_stride} exceeds --seq-len {self.seq_len}: "
                              "some steps would never be learned from")  # fmt: skip
        if self.learning_starts > self.buffer_size:
            raise ConfigError(
                f"--learning-starts {self.learning_starts} exceeds --buffer-size {self.buffer_size}"
            )
        if not 0 <= self.eps_end <= self.eps_start <= 1:
            raise ConfigError("epsilons must satisfy 0 <= eps-end <= eps-start <= 1")
        if self.loss not in ("huber", "mse"):
            raise ConfigError(f"--loss {self.loss!r}: choose huber or mse")
        check_precision(self.precision)

    @property
    def env_groups(self) -> int:
        """DRQN steps all its envs at once."""
        return 1


PRESETS = {
    # R2D2's shape at a single machine's size; not yet measured on Atari.
    "atari": Config(),
    # CartPole-NoVel (velocities hidden), 100k steps, final evaluation (5 games) on seeds 0/1/2: 500 / 444.6 /
    # 254.8, against 48.2 / 35.8 / 42.0 for DQN's classic preset at the same budget (~2.5-3 min per run on
    # the 2-core CPU). A 100k buffer with target syncs every 2k steps gave 300.8 / 184.8 / 500.
    "classic": Config(
        frames=100_000, num_envs=1, buffer_size=50_000, batch_size=32, lr=1e-3, adam_eps=1e-8,
        learning_starts=2_000, train_every=8, target_update_every=1_000, eps_end=0.02, eps_decay_steps=20_000,
        eval_epsilon=0.0, n_step=3, loss="mse", hidden=(64,), lstm_hidden=64, burn_in=8, seq_len=16,
        seq_stride=4, precision="fp32",
    ),
}  # fmt: skip


class RecurrentQNet(nn.Module):
    """encoder -> LSTM -> Q head (Hausknecht & Stone 2015, Fig. 1), with the state passed in and out as
    tensors so that nets.DeviceNet runs it like any network. obs (T, B, ...) with first (T, B), or one step
    (B, ...) with first (B,); returns (Q (.., A), h, c) in float32."""

    def __init__(
        self, obs_shape: Sequence[int], num_actions: int, hidden: Sequence[int], lstm_hidden: int,
        dueling: bool,
    ) -> None:  # fmt: skip
        super().__init__()
        self.core = nets.LSTMCore(nets.backbone_for(obs_shape, hidden), lstm_hidden)
        self.head = nets.QHead(lstm_hidden, num_actions, dueling=dueling)

    def forward(
        self, obs: torch.Tensor, h: torch.Tensor, c: torch.Tensor, first: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features, (h, c) = self.core(obs, (h, c), first)
        return self.head(features).float(), h.float(), c.float()


class DRQN:
    """Recurrent Q-network, its target, the optimiser and the actors' memory: `act` and `learn` are DRQN."""

    def __init__(
        self, cfg: Config, obs_space: gym.Space, num_actions: int, device: str = "auto", seed: int = 0
    ) -> None:
        self.cfg, self.device, self.num_actions = cfg, nets.resolve_device(device), num_actions
        net = RecurrentQNet(obs_space.shape, num_actions, cfg.hidden, cfg.lstm_hidden, cfg.dueling)
        self.q_net = net.to(self.device)
        self.target_q_net = copy.deepcopy(self.q_net).requires_grad_(False)
        self.optimizer = nets.make_optimizer("adam", self.q_net.parameters(), cfg.lr, eps=cfg.adam_eps)
        self.loss_fn = nets.get_loss(cfg.loss)
        self.q = nets.DeviceNet(self.q_net, self.device, cfg.precision, self.optimizer)
        self.target_q = nets.DeviceNet(self.target_q_net, self.device, cfg.precision)
        self.rng = np.random.default_rng(seed)
        self.updates = 0
        # The envs' memory, the state before their next observation: training and evaluation apart, so
        # that evaluating mid-run leaves the training envs' memory as it was.
        self.actor_state: State | None = None
        self.eval_state: State | None = None
        self._metrics: torch.Tensor | None = None  # the last update's metrics, on the device until logged

    def initial_state(self, num_envs: int) -> State:
        return self.q_net.core.initial_state(num_envs, self.device)

    @torch.inference_mode()
    def _act(
        self, obs: np.ndarray, first: np.ndarray, epsilon: float, state: State | None
    ) -> tuple[np.ndarray, State]:
        """Epsilon-greedy actions (N,) and the new state. The network always runs: memory must advance on
        exploring steps too."""
        if state is None or state[0].shape[1] != len(obs):  # a new set of envs: every one starts afresh
            state, first = self.initial_state(len(obs)), np.ones(len(obs), dtype=bool)
        q, h, c = self.q.infer(obs, *state, first)  # (N, A); the state is zeroed where `first`
        explore = self.rng.random(len(obs)) < epsilon
        random_actions = self.rng.integers(0, self.num_actions, len(obs))
        return np.where(explore, random_actions, q.argmax(-1).cpu().numpy()), (h, c)

    def act(self, obs: np.ndarray, first: np.ndarray, epsilon: float) -> np.ndarray:
        """Actions for the training envs' observations (N, ...), whose memory is reset where `first` (N,)."""
        actions, self.actor_state = self._act(obs, first, epsilon, self.actor_state)
        return actions

    def eval_act(self, obs: np.ndarray, first: np.ndarray | None = None) -> np.ndarray:
        """Evaluation actions, with their own memory; `first` None: every observation starts an episode."""
        first = np.ones(len(obs), dtype=bool) if first is None else first
        actions, self.eval_state = self._act(obs, first, self.cfg.eval_epsilon, self.eval_state)
        return actions

    def learn(self, batch: Sequences) -> None:
        """One gradient step on B sequences (numpy, or tensors already on the device)."""
        b, burn_in = batch.to(self.device), self.cfg.burn_in
        h, c = b.h, b.c  # (1, B, H) the actor's state at each sequence's start, as stored
        with torch.no_grad():
            if burn_in:  # R2D2's burn-in: the stale stored state is only warmed up, no loss or gradient
                _, h, c = self.q.infer(b.obs[:burn_in], h, c, b.first[:burn_in])
            target_q, _, _ = self.target_q.infer(b.obs, b.h, b.c, b.first)  # (T, B, A) from the stored state
        q_all, _, _ = self.q(b.obs[burn_in:], h, c, b.first[burn_in:])  # (L + n, B, A)
        q_taken = q_all[: self.cfg.seq_len].gather(2, b.actions[..., None]).squeeze(2)  # (L, B)
        actions_axis = (-1, -1, self.num_actions)
        next_q_target = target_q.gather(0, b.bootstrap[..., None].expand(*actions_axis))  # (L, B, A)
        next_q_online = None
        if self.cfg.double:
            next_q_online = q_all.detach().gather(0, (b.bootstrap - burn_in)[..., None].expand(*actions_axis))
            next_q_online = next_q_online.flatten(0, 1)
        targets = td_targets(b.returns.flatten(), b.discounts.flatten(), next_q_target.flatten(0, 1),
                             next_q_online).view_as(q_taken)  # fmt: skip
        counted = b.mask.sum().clamp_min(1.0)
        loss = self.loss_fn(q_taken, targets, b.mask * (b.mask.numel() / counted))  # mean over counted steps
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.q_net.parameters(), self.cfg.max_grad_norm)
        self.optimizer.step()
        self.updates += 1
        q_mean = (q_taken.detach() * b.mask).sum() / counted
        self._metrics = torch.stack([loss.detach(), q_mean, grad_norm, b.mask.mean()])

    def metrics(self) -> dict[str, float]:
        """The last update's TD loss, mean Q(s, a), gradient norm and counted fraction; {} before any."""
        if self._metrics is None:
            return {}
        loss, q_mean, grad_norm, counted = self._metrics.tolist()
        return {"losses/td_loss": loss, "losses/q_values": q_mean, "losses/grad_norm": grad_norm,
                "losses/counted_fraction": counted}  # fmt: skip

    def update(self, batch: Sequences) -> dict[str, float]:
        self.learn(batch)
        return self.metrics()

    def sync_target(self) -> None:
        self.target_q_net.load_state_dict(self.q_net.state_dict())

    def state_dict(self) -> dict:
        return {"q_net": self.q_net.state_dict(), "target_q_net": self.target_q_net.state_dict(),
                "optimizer": self.optimizer.state_dict(), "updates": self.updates}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        self.q_net.load_state_dict(state["q_net"])
        self.target_q_net.load_state_dict(state["target_q_net"])
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])
        self.updates = int(state.get("updates", 0))


def make_agent(cfg: Config, env: gym.vector.VectorEnv, device: str = "auto", seed: int = 0) -> DRQN:
    return DRQN(cfg, env.single_observation_space, num_discrete_actions(env, "DRQN"), device, seed)


def make_replay(cfg: Config, env: gym.vector.VectorEnv, seed: int = 0) -> SequenceReplay:
    space = env.single_observation_space
    return SequenceReplay(
        cfg.buffer_size, env.num_envs, space.shape, space.dtype, state_size=cfg.lstm_hidden,
        burn_in=cfg.burn_in, seq_len=cfg.seq_len, seq_stride=cfg.seq_stride, n_step=cfg.n_step,
        gamma=cfg.gamma, seed=seed,
    )  # fmt: skip


def env_options(cfg: Config, kind: str) -> dict[str, int]:
    """Single frames on Atari: the LSTM, not a frame stack, is the memory (Hausknecht & Stone 2015)."""
    return {"frame_stack": 1} if kind == "atari" else {}


def train(
    cfg: Config,
    env: gym.vector.VectorEnv,
    agent: DRQN,
    *,
    total_steps: int,
    start_step: int = 0,
    seed: int = 0,
    log_every: int = 1_000,
    replay: SequenceReplay | None = None,
) -> Iterator[tuple[int, list[dict[str, float]]]]:
    """The training loop. Yields (global_step, rows) after every vector step; rows are finished games with
    their raw score, and training statistics every `log_every` steps."""
    replay = replay if replay is not None else make_replay(cfg, env, seed)
    obs, info = env.reset(seed=seed)  # (N, 1, 84, 84) uint8 | (N, D) float32
    first = envs.first_of_episode(info)  # (N,) bool
    if not envs.restored(info):  # a resumed run's agent remembers the restored games (pixelrl/resume.py)
        agent.actor_state = agent.initial_state(env.num_envs)
    if replay.added == 0 or not envs.restored(info):  # a saved replay already holds the restored games
        replay.reset(obs, agent.actor_state)
    global_step = start_step
    while global_step < total_steps:
        epsilon = linear_schedule(cfg.eps_start, cfg.eps_end, cfg.eps_decay_steps, global_step)
        actions = agent.act(obs, first, epsilon)
        next_obs, rewards, terminations, truncations, info = env.step(actions)
        first = envs.first_of_episode(info)
        replay.add(actions, rewards, terminations, next_obs, first, agent.actor_state)
        obs = next_obs
        prev_step, global_step = global_step, global_step + env.num_envs
        rows = [{"episode_return": score, "episode_length": length}
                for _, score, length in envs.finished_episodes(info)]  # fmt: skip

        if replay.added >= cfg.learning_starts and len(replay) > 0:
            # Due updates are counted in multiples of train_every crossed: steps advance num_envs at a time.
            for _ in range(crossings(prev_step, global_step, cfg.train_every) * cfg.gradient_steps):
                agent.learn(replay.sample(cfg.batch_size))
            if crossings(prev_step, global_step, cfg.target_update_every):
                agent.sync_target()
        if crossings(prev_step, global_step, log_every):  # fixed steps: a resumed run logs where this did
            rows.append({**agent.metrics(), "charts/epsilon": epsilon, "charts/replay_size": len(replay)})
        yield global_step, rows


SPEC = AgentSpec("drqn", Config, PRESETS, make_agent, train, make_replay=make_replay, env_options=env_options)
