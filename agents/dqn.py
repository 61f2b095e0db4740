"""DQN: deep Q-learning from pixels (Mnih et al. 2015, "Human-level control through deep RL").

Algorithm box: act epsilon-greedily in `num_envs` envs, store transitions in a frame-once replay, and
every `train_every` agent steps regress Q(s, a) on the bootstrapped target
    y = R^(n) + gamma^n * (1 - terminated) * Q_target(s', argmax_a' Q(s', a'))          (double DQN)
with a Huber loss and Adam, copying Q into Q_target every `target_update_every` steps.

Options that matter in practice, each a flag: Double DQN (van Hasselt et al. 2016), dueling head (Wang et
al. 2016), n-step returns (Sutton 1988; Hessel et al. 2018), proportional prioritized replay with annealed
importance weights (Schaul et al. 2016). Deviations from the Nature paper: Adam instead of RMSProp
(as Rainbow, Dopamine and CleanRL), a 100k replay and a shorter exploration schedule sized for a
single CPU, several envs stepped together (the update ratio per agent step is the paper's).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

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
from agents.interface import AgentSpec
from agents.replay import DeviceBatches, ReplayBuffer, Transitions


@dataclass(frozen=True)
class Config:
    """DQN hyperparameters. Defaults are the Atari preset; `PRESETS["classic"]` holds CartPole's."""

    frames: int = 6_000_000
    """Training budget in emulator frames (agent steps x 4 on Atari)."""
    num_envs: int = 4
    """Envs stepped together; each vector step adds num_envs transitions."""
    buffer_size: int = 100_000
    """Replay capacity in transitions (Nature: 1M; 100k fits in ~0.7 GB with frame-once storage)."""
    batch_size: int = 32
    """Transitions per gradient step (Mnih et al. 2015)."""
    lr: float = 1e-4
    """Adam learning rate (CleanRL and SB3 zoo Atari DQN)."""
    adam_eps: float = 1.5e-4
    """Adam epsilon (Hessel et al. 2018)."""
    gamma: float = 0.99
    """Discount factor."""
    learning_starts: int = 20_000
    """Transitions collected with the starting epsilon before the first update (Nature: 50k)."""
    train_every: int = 4
    """Agent steps between gradient steps (Mnih et al. 2015: 4)."""
    gradient_steps: int = 1
    """Gradient steps each time training is due."""
    target_update_every: int = 2_000
    """Agent steps between hard copies of Q into the target network (Nature: 10k; CleanRL: 1k)."""
    eps_start: float = 1.0
    """Initial exploration rate."""
    eps_end: float = 0.01
    """Final exploration rate (Dopamine, CleanRL)."""
    eps_decay_steps: int = 250_000
    """Agent steps over which epsilon decays linearly (Nature: 1M; shorter suits a CPU budget)."""
    eval_epsilon: float = 0.05
    """Exploration rate when evaluating (Mnih et al. 2015)."""
    double: bool = True
    """Double DQN: the online network picks the next action, the target network values it."""
    dueling: bool = False
    """Dueling head: Q = V + A - mean(A)."""
    n_step: int = 3
    """Steps of real rewards before bootstrapping (1 = the Nature paper; 3 as in Rainbow)."""
    prioritized: bool = False
    """Proportional prioritized replay."""
    per_alpha: float = 0.6
    """Priority exponent (Schaul et al. 2016)."""
    per_beta_start: float = 0.4
    """Importance-sampling exponent at the start, annealed to 1 by the end of training."""
    loss: str = "huber"
    """huber (Mnih et al. 2015: error clipping) or mse."""
    max_grad_norm: float = 10.0
    """Gradient norm clip: a guard against rare huge TD errors (Huber already bounds most)."""
    hidden: tuple[int, ...] = (256, 256)
    """MLP widths for vector observations (pixels use the Nature CNN)."""
    precision: str = "auto"
    """Network precision: auto, bf16, fp32 or tf32. auto picks by device (nets.choose_precision): bf16
    autocast on CPUs that run it natively (about 2x faster on the CNN there), TF32 on Ampere+ GPUs, else
    fp32. Weights, targets, loss and Adam stay float32."""
    compile: bool = False
    """torch.compile the acting forward and the TD loss (its forwards and, through AOTAutograd, its backward),
    in mode "reduce-overhead" on CUDA: CUDA graphs, against the launch overhead that bounds a batch-32 update
    on a GPU. Unmeasured on a GPU (none was at hand), hence off. On the 2-core AMD EPYC (bf16) it gave the
    same values as eager within float tolerance and no speed-up: the update 4-6% slower, the training loop
    0.99x eager; the first update took ~15 s to compile."""

    def __post_init__(self) -> None:
        check_config(
            self,
            positive=(
                "frames",
                "num_envs",
                "buffer_size",
                "batch_size",
                "lr",
                "adam_eps",
                "gamma",
                "train_every",
                "gradient_steps",
                "target_update_every",
                "n_step",
                "max_grad_norm",
            ),
            non_negative=("learning_starts", "eps_decay_steps"),
            unit=("gamma", "eps_start", "eps_end", "eval_epsilon", "per_alpha", "per_beta_start"),
        )
        if self.buffer_size < self.batch_size:
            raise ConfigError(
                f"--buffer-size {self.buffer_size} is smaller than --batch-size {self.batch_size}"
            )
        if self.learning_starts > self.buffer_size:
            raise ConfigError(
                f"--learning-starts {self.learning_starts} exceeds --buffer-size {self.buffer_size}"
            )
        if not 0 <= self.eps_end <= self.eps_start <= 1:
            raise ConfigError("epsilons must satisfy 0 <= eps-end <= eps-start <= 1")
        if self.loss not in nets.losses.LOSSES:
            raise ConfigError(f"--loss {self.loss!r}: choose one of {', '.join(nets.losses.LOSSES)}")
        check_precision(self.precision)

    @property
    def env_groups(self) -> int:
        """DQN steps all its envs at once (the run layer asks every agent)."""
        return 1


PRESETS = {
    "atari": Config(),
    # CartPole: SB3 zoo's tuned DQN (few, large bursts of updates on a small MLP), with SB3's plain DQN
    # targets (no double Q-learning). Final 10-game evaluations at 50k steps, seeds 0-4: 500, 204.8, 500, 500,
    # 500; with double DQN 48.5, 500, 500, 500, 198.8, and each update a third more forward passes.
    "classic": Config(
        frames=50_000, num_envs=1, buffer_size=50_000, batch_size=64, lr=2.3e-3, adam_eps=1e-8,
        learning_starts=1_000, train_every=256, gradient_steps=128, target_update_every=10,
        eps_end=0.04, eps_decay_steps=8_000, eval_epsilon=0.0, double=False, n_step=1, loss="mse",
        precision="fp32",
    ),
    # Pong in 2M frames: four times the default replay ratio (a batch of 32 after every agent step, as in
    # data-efficient Rainbow, van Hasselt et al. 2019), dueling heads (Wang et al. 2016) on top of the
    # default double DQN with 3-step returns, learning from 10k steps with epsilon decayed over 100k.
    # Evaluated as Rainbow is (Hessel et al. 2018; Dopamine's configs: epsilon 0.01 in training, 0.001 in
    # evaluation). At Nature's 0.05 the random actions cost this policy points: its checkpoint at 1M frames
    # on Pong scored 14.1 over 10 games at 0.05 and 20.7 at 0.001 (docs/benchmarks.md).
    "fast": Config(frames=2_000_000, train_every=1, learning_starts=10_000, eps_decay_steps=100_000,
                   dueling=True, eval_epsilon=0.001),
}  # fmt: skip


class DQN:
    """Q-network, target network and optimiser; `act` and `learn` are the whole agent.

    Nothing in `act` or `learn` waits on the device beyond copying the chosen actions to the host: the
    metrics stay on the device until `metrics()` reads them (when the loop logs), and the TD errors until
    `td_abs` does (prioritized replay only). On a GPU each such read is a sync; on the CPU they are free."""

    def __init__(
        self, cfg: Config, obs_space: gym.Space, num_actions: int, device: str = "auto", seed: int = 0
    ) -> None:
        self.cfg, self.device, self.num_actions = cfg, nets.resolve_device(device), num_actions
        backbone = nets.backbone_for(obs_space.shape, cfg.hidden)  # Nature CNN on (4, 84, 84) uint8 frames
        head = nets.QHead(backbone.out_dim, num_actions, dueling=cfg.dueling)
        self.q_net = nets.BackboneWithHead(backbone, head).to(self.device)
        self.target_q_net = copy.deepcopy(self.q_net).requires_grad_(False)
        self.optimizer = nets.make_optimizer("adam", self.q_net.parameters(), cfg.lr, eps=cfg.adam_eps)
        self.loss_fn = nets.get_loss(cfg.loss)
        self.q = nets.DeviceNet(self.q_net, self.device, cfg.precision, self.optimizer)
        self.target_q = nets.DeviceNet(self.target_q_net, self.device, cfg.precision)
        self.rng = np.random.default_rng(seed)
        self.updates = 0
        self._metrics: torch.Tensor | None = None  # the last update's loss, mean Q, grad norm (on the device)
        self._td = torch.zeros(0)  # the last update's TD errors y - Q(s, a) (on the device)
        # Eager, acting and the targets read the networks' cast-once inference copies (`infer`). Compiled,
        # they call the modules under autocast: the weight casts are then part of the compiled graph, and
        # the copies' per-call version checks would stop the graph.
        self._greedy_q, self._target_forward, self._td_loss = self.q.infer, self.target_q.infer, self._loss
        if cfg.compile:
            mode = "reduce-overhead" if self.device.type == "cuda" else None
            self._greedy_q = torch.compile(self.q.__call__, mode=mode)
            self._target_forward = self.target_q
            self._td_loss = torch.compile(self._loss, mode=mode)

    @torch.inference_mode()
    def act(self, obs: np.ndarray, epsilon: float) -> np.ndarray:
        """Epsilon-greedy actions for a batch of observations (N, ...) -> (N,) int64, drawn as before. The
        network runs only if some env acts greedily (not at all at epsilon 1, as in the warm-up), and its
        argmax is the one copy to the host."""
        explore = self.rng.random(len(obs)) < epsilon
        random_actions = self.rng.integers(0, self.num_actions, len(obs))
        if explore.all():
            return random_actions
        greedy = self._greedy_q(nets.to_device(obs, self.device)).argmax(-1).cpu().numpy()
        return np.where(explore, random_actions, greedy)

    def eval_act(self, obs: np.ndarray, first: np.ndarray | None = None) -> np.ndarray:
        return self.act(obs, self.cfg.eval_epsilon)

    def learn(self, batch: Transitions) -> None:
        """One gradient step on a replay batch (numpy, or tensors already on the device)."""
        loss, q, targets = self._td_loss(batch.to(self.device))  # uint8 frames stay uint8 until the network
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.q_net.parameters(), self.cfg.max_grad_norm)
        self.optimizer.step()
        self.updates += 1
        self._td = (targets - q).detach()
        self._metrics = torch.stack([loss.detach(), q.detach().mean(), grad_norm])

    def _loss(self, b: Transitions) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The TD loss on a batch on the device, with Q(s, a) and the targets y (B,)."""
        with torch.no_grad():
            next_q_target = self._target_forward(b.next_obs)  # (B, A)
            # Double DQN's online pass on s' stays apart from the one on s: one forward over both (2B) was
            # 1.25-1.28x slower per update on the 2-core CPU, since the backward then runs over 2B too.
            next_q_online = self.q(b.next_obs) if self.cfg.double else None
        targets = td_targets(b.returns, b.discounts, next_q_target, next_q_online)
        q = self.q(b.obs).gather(1, b.actions[:, None]).squeeze(1)
        return self.loss_fn(q, targets, b.weights), q, targets

    def metrics(self) -> dict[str, float]:
        """The last update's TD loss, mean Q(s, a) and gradient norm (before clipping); {} before any."""
        if self._metrics is None:
            return {}
        loss, q_mean, grad_norm = self._metrics.tolist()  # the one read to the host, when the loop logs
        return {"losses/td_loss": loss, "losses/q_values": q_mean, "losses/grad_norm": grad_norm}

    @property
    def td_abs(self) -> np.ndarray:
        """|TD errors| (B,) of the last update's batch, for prioritized replay's `update_priorities`."""
        return self._td.abs().cpu().numpy()

    def update(self, batch: Transitions) -> dict[str, float]:
        """`learn`, then its metrics (a host read: the training loop calls `learn` and logs `metrics()`)."""
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


def td_targets(
    returns: torch.Tensor,  # (B,) n-step discounted rewards
    discounts: torch.Tensor,  # (B,) gamma**m, 0 where the episode terminated
    next_q_target: torch.Tensor,  # (B, A) target network at the bootstrap observation
    next_q_online: torch.Tensor | None = None,  # (B, A) online network there: double DQN when given
) -> torch.Tensor:
    """y = R + gamma^m * Q_target(s', a*), a* = argmax of the online net (double) or of the target net."""
    chooser = next_q_online if next_q_online is not None else next_q_target
    best = chooser.argmax(-1, keepdim=True)
    return returns + discounts * next_q_target.gather(1, best).squeeze(1)


def make_agent(cfg: Config, env: gym.vector.VectorEnv, device: str = "auto", seed: int = 0) -> DQN:
    num_actions = num_discrete_actions(env, "DQN")
    return DQN(cfg, env.single_observation_space, num_actions, device, seed)


def make_replay(cfg: Config, env: gym.vector.VectorEnv, seed: int = 0) -> ReplayBuffer:
    space = env.single_observation_space
    return ReplayBuffer(
        cfg.buffer_size, env.num_envs, space.shape, space.dtype, frame_stack=len(space.shape) == 3,
        n_step=cfg.n_step, gamma=cfg.gamma, prioritized=cfg.prioritized, alpha=cfg.per_alpha, seed=seed,
    )  # fmt: skip


def train(
    cfg: Config,
    env: gym.vector.VectorEnv,
    agent: DQN,
    *,
    total_steps: int,
    start_step: int = 0,
    seed: int = 0,
    log_every: int = 1_000,
    replay: ReplayBuffer | None = None,
) -> Iterator[tuple[int, list[dict[str, float]]]]:
    """The training loop. Yields (global_step, rows) after every vector step; rows are metric dicts
    (finished games with their raw score, and training statistics every `log_every` steps). Pass `replay`
    to keep (and save) the buffer outside the loop; by default a fresh one is filled."""
    replay = replay if replay is not None else make_replay(cfg, env, seed)
    batches = DeviceBatches(replay, agent.device, cfg.batch_size)  # on CUDA: pinned, copied asynchronously
    obs, info = env.reset(seed=seed)  # (N, 4, 84, 84) uint8
    if replay.added == 0 or not envs.restored(info):  # a saved replay already holds the restored games
        replay.reset(obs)
    global_step = start_step
    while global_step < total_steps:
        epsilon = linear_schedule(cfg.eps_start, cfg.eps_end, cfg.eps_decay_steps, global_step)
        actions = agent.act(obs, epsilon)
        next_obs, rewards, terminations, truncations, info = env.step(actions)
        replay.add(actions, rewards, terminations, next_obs, envs.first_of_episode(info))
        obs = next_obs
        prev_step, global_step = global_step, global_step + env.num_envs
        rows = [{"episode_return": score, "episode_length": length}
                for _, score, length in envs.finished_episodes(info)]  # fmt: skip

        # Counted in transitions added, not held: a full ring never holds `buffer_size` sampleable ones.
        if replay.added >= cfg.learning_starts and len(replay) >= cfg.batch_size:
            beta = linear_schedule(cfg.per_beta_start, 1.0, total_steps, global_step)
            for _ in range(crossings(prev_step, global_step, cfg.train_every) * cfg.gradient_steps):
                batch = batches.sample(beta)
                agent.learn(batch)
                if replay.prioritized:  # the TD errors go to the host only here
                    replay.update_priorities(batch.indices, agent.td_abs)
            if crossings(prev_step, global_step, cfg.target_update_every):
                agent.sync_target()
        if crossings(prev_step, global_step, log_every):  # fixed steps: a resumed run logs where this did
            rows.append({**agent.metrics(), "charts/epsilon": epsilon, "charts/replay_size": len(replay)})
        yield global_step, rows


# `compile` changes how fast the same updates run, and `eval_epsilon` how the evaluation games are played,
# not what is learned: a resume may change them.
SPEC = AgentSpec("dqn", Config, PRESETS, make_agent, train, make_replay=make_replay,
                 resumable=("frames", "compile", "eval_epsilon"))  # fmt: skip
