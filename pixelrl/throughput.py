"""Training throughput: our PPO and DQN against Stable-Baselines3's on identical settings, and the ceilings.

Every contender is built once, warmed up, then timed for a fixed number of agent steps, `repeats` times,
interleaved (ours, SB3, ours, SB3, ...) so that load from other processes falls on all of them alike.
Settings shared by both sides (the SB3 zoo's Atari hyperparameters, design §1's protocol):

- PPO: 8 envs x 128 steps, 4 epochs of 4 minibatches of 256, Adam 2.5e-4, clip 0.1, no value clipping
  (SB3's default), entropy 0.01, value loss 0.5 x MSE, GAE 0.95, gamma 0.99, gradient clip 0.5, Nature CNN.
- DQN: 4 envs, one gradient step of 32 per 4 transitions, 100k replay, Adam 1e-4, Huber loss, target
  copy every 1,000 steps, plain (not double, not dueling, 1-step) targets, gradient clip 10, Nature CNN,
  epsilon fixed at 0.01 (so both act through the network). This is SB3's DQN, not our Atari preset (Double
  DQN with 3-step returns), whose update costs one more forward pass.
- Pong with sticky actions 0.25 (per emulator frame, in ALE), 30 no-op resets, FIRE on reset, frame skip 4
  with max-pooling, 84x84x4 grayscale, life loss ends episodes, clipped rewards; SB3 through its
  `AtariWrapper`, ours through `envs.make`. Each library steps the envs with its own vector backend: SB3
  with its default `DummyVecEnv` (as its zoo does), ours with what `backend="auto"` picks: the backend
  measured fastest on this machine by `benchmark.py envs`, or by rule EnvPool where nothing is recorded.
- Precision: ours at what `precision="auto"` picks on the device (nets.choose_precision), and in fp32 (the
  "pixelrl fp32" rows); SB3 has no autocast and runs in float32, with TF32 on where ours runs TF32, so
  that TF32 alone does not count as our speed-up.

Ceilings, measured in the same invocation, in every repeat right after the contenders (the median of the
repeats is reported): env-only (random actions through our env stack) and compute-only (the network's own
forward, backward and Adam step on random pixels, no Python around it). A serial learner cannot beat
1 / (1 / env_sps + compute_seconds_per_step).
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

import envs
import nets
from agents import dqn, ppo, ppo_lstm
from pixelrl.measure import measure_env_sps, network_seconds, serial_ceiling

if TYPE_CHECKING:
    from stable_baselines3.common.vec_env import VecEnv

GAME = "Pong"
# SB3's PPO does not clip the value update and weighs it vf_coef x MSE; ours is vf_coef x 0.5 x MSE.
PPO_CFG = ppo.Config(clip_value=False, vf_coef=1.0)
DQN_CFG = dqn.Config(
    num_envs=4, buffer_size=100_000, batch_size=32, lr=1e-4, adam_eps=1e-8, learning_starts=2_000,
    train_every=4, gradient_steps=1, target_update_every=1_000, double=False, dueling=False, n_step=1,
    loss="huber", max_grad_norm=10.0, eps_start=0.01, eps_end=0.01,
)  # fmt: skip
NUM_ACTIONS = 6  # Pong's minimal action set, for the network-only ceilings


# A contender is built once and returns `run(steps) -> seconds`, continuing its own training each call.
Runner = Callable[[int], float]


def ours_ppo(cfg: ppo.Config, device: str, seed: int = 0, agent_module: Any = ppo) -> tuple[Runner, dict]:
    """Our PPO, or another on-policy agent with PPO's loop and Config (`agent_module=ppo_lstm`)."""
    options = agent_module.SPEC.env_options(cfg, "atari")
    env = envs.make(GAME, cfg.num_envs, seed=seed, groups=cfg.env_groups, **options)
    agent = agent_module.make_agent(cfg, env, device, seed)
    loop = agent_module.train(cfg, env, agent, total_steps=10**12, seed=seed)
    state = {"step": 0}

    def advance(steps: int) -> None:  # whole rollouts: stop right after the update that reaches `steps`
        target = state["step"] + steps
        for global_step, rows in loop:
            if global_step >= target and any("charts/learning_rate" in r for r in rows):
                state["step"] = global_step
                return

    advance(cfg.num_envs * cfg.num_steps)  # warm-up: one rollout and update
    return _timed(advance), {}


def ours_dqn(cfg: dqn.Config, device: str, seed: int = 0) -> tuple[Runner, dict]:
    env = envs.make(GAME, cfg.num_envs, seed=seed)
    agent = dqn.make_agent(cfg, env, device, seed)
    replay = dqn.make_replay(cfg, env, seed)
    loop = dqn.train(cfg, env, agent, total_steps=10**12, seed=seed, replay=replay)
    state = {"step": 0}

    def advance(steps: int) -> None:
        target = state["step"] + steps
        for global_step, _ in loop:
            if global_step >= target:
                state["step"] = global_step
                return

    info = {"bytes_per_transition": replay.bytes_per_transition}

    def advance_and_count(steps: int) -> None:
        advance(steps)
        info["updates"] = agent.updates

    advance_and_count(cfg.learning_starts + 200)  # warm-up: fill the replay and make the first updates
    return _timed(advance_and_count), info


def _sb3_env(num_envs: int, seed: int, frame_stack: int = 4) -> VecEnv:
    import ale_py
    import gymnasium as gym
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    gym.register_envs(ale_py)
    env = make_atari_env(
        "ALE/Pong-v5",
        n_envs=num_envs,
        seed=seed,
        # AtariWrapper does the frame skip, so ALE must not; ALE applies sticky actions per frame, as ours.
        env_kwargs={
            "frameskip": 1,
            "repeat_action_probability": envs.AtariOptions().sticky,
            "full_action_space": False,
        },
    )
    return VecFrameStack(env, n_stack=frame_stack) if frame_stack > 1 else env


def sb3_ppo(cfg: ppo.Config, device: str, seed: int = 0) -> tuple[Runner, dict]:
    from stable_baselines3 import PPO

    model = PPO(
        "CnnPolicy", _sb3_env(cfg.num_envs, seed), n_steps=cfg.num_steps,
        batch_size=cfg.num_envs * cfg.num_steps // cfg.minibatches, n_epochs=cfg.epochs,
        learning_rate=cfg.lr, clip_range=cfg.clip, ent_coef=cfg.ent_coef, vf_coef=cfg.vf_coef,
        gamma=cfg.gamma, gae_lambda=cfg.gae_lambda, max_grad_norm=cfg.max_grad_norm, device=device,
        seed=seed, verbose=0,
    )  # fmt: skip

    def advance(steps: int) -> None:
        model.learn(steps, reset_num_timesteps=False)

    advance(cfg.num_envs * cfg.num_steps)
    return _timed(advance), {}


def sb3_recurrent_ppo(cfg: ppo_lstm.Config, device: str, seed: int = 0) -> tuple[Runner, dict]:
    """SB3-contrib's RecurrentPPO on single frames, one LSTM shared by actor and critic, as ours."""
    from sb3_contrib import RecurrentPPO

    model = RecurrentPPO(
        "CnnLstmPolicy", _sb3_env(cfg.num_envs, seed, frame_stack=1), n_steps=cfg.num_steps,
        batch_size=cfg.num_envs * cfg.num_steps // cfg.minibatches, n_epochs=cfg.epochs,
        learning_rate=cfg.lr, clip_range=cfg.clip, ent_coef=cfg.ent_coef, vf_coef=cfg.vf_coef,
        gamma=cfg.gamma, gae_lambda=cfg.gae_lambda, max_grad_norm=cfg.max_grad_norm, device=device,
        seed=seed, verbose=0,
        policy_kwargs={"lstm_hidden_size": cfg.lstm_hidden, "shared_lstm": True, "enable_critic_lstm": False},
    )  # fmt: skip

    def advance(steps: int) -> None:
        model.learn(steps, reset_num_timesteps=False)

    advance(cfg.num_envs * cfg.num_steps)
    return _timed(advance), {}


def sb3_dqn(cfg: dqn.Config, device: str, seed: int = 0) -> tuple[Runner, dict]:
    from stable_baselines3 import DQN

    # Units: SB3's train_freq counts vector steps (each adds num_envs transitions); learning_starts and
    # target_update_interval count transitions, like ours.
    if cfg.train_every % cfg.num_envs:
        raise ValueError(f"train_every {cfg.train_every} must be a multiple of num_envs {cfg.num_envs}")
    model = DQN(
        "CnnPolicy", _sb3_env(cfg.num_envs, seed), buffer_size=cfg.buffer_size, learning_rate=cfg.lr,
        batch_size=cfg.batch_size, learning_starts=cfg.learning_starts,
        train_freq=cfg.train_every // cfg.num_envs, gradient_steps=cfg.gradient_steps,
        target_update_interval=cfg.target_update_every, gamma=cfg.gamma, max_grad_norm=cfg.max_grad_norm,
        exploration_initial_eps=cfg.eps_start, exploration_final_eps=cfg.eps_end,
        optimize_memory_usage=False, device=device, seed=seed, verbose=0,
    )  # fmt: skip
    rb = model.replay_buffer
    held = sum(a.nbytes for a in vars(rb).values() if isinstance(a, np.ndarray))
    info = {"bytes_per_transition": held / (rb.buffer_size * rb.n_envs)}

    def advance(steps: int) -> None:
        model.learn(steps, reset_num_timesteps=False)
        info["updates"] = model._n_updates

    advance(cfg.learning_starts + 200)
    return _timed(advance), info


def _timed(advance: Callable[[int], None]) -> Runner:
    def run(steps: int) -> float:
        start = time.perf_counter()
        advance(steps)
        return time.perf_counter() - start

    return run


# --- ceilings -------------------------------------------------------------------------------------------


def env_ceiling(num_envs: int, seconds: float, seed: int = 0) -> float:
    """Agent steps/s of our env stack alone with random actions (the backend `auto` picks)."""
    return measure_env_sps(GAME, "auto", num_envs, seconds, seed)


def compute_ceiling_ppo(cfg: ppo.Config, device: torch.device) -> float:
    """Agent steps/s if only the network ran: one inference per vector step plus `epochs` passes of
    minibatch training per rollout."""
    net = nets.ActorCritic((4, 84, 84), NUM_ACTIONS, cfg.hidden).to(device)
    mb = cfg.num_envs * cfg.num_steps // cfg.minibatches
    per_step = network_seconds(net, cfg.num_envs, cfg.precision, device, train=False) / cfg.num_envs
    # channels-last, as the rollouts store the frames
    train_seconds = network_seconds(net, mb, cfg.precision, device, train=True, channels_last=True)
    per_step += cfg.epochs * train_seconds / mb
    return 1 / per_step


def compute_ceiling_dqn(cfg: dqn.Config, device: torch.device) -> float:
    """Agent steps/s if only the network ran: one inference per vector step plus one batch update (online
    and target forward, backward, Adam) every `train_every` steps."""
    body = nets.NatureCNN((4, 84, 84))
    net = nets.BackboneWithHead(body, nets.QHead(body.out_dim, NUM_ACTIONS)).to(device)
    per_step = network_seconds(net, cfg.num_envs, cfg.precision, device, train=False) / cfg.num_envs
    per_step += (
        network_seconds(net, cfg.batch_size, cfg.precision, device, train=True, forwards=2) / cfg.train_every
    )
    return 1 / per_step


# --- the benchmark --------------------------------------------------------------------------------------


def contender_precision(who: str, default: str) -> str:
    """The precision a contender runs at, given what `precision="auto"` picks on the device: ours at that,
    or fp32 for the fp32 variants; SB3 in float32, with TF32 where ours runs TF32 (module docstring)."""
    if who == "sb3":
        return "tf32" if default == "tf32" else "fp32"
    return "fp32" if "fp32" in who else default


def run(
    *, ppo_steps: int, dqn_steps: int, repeats: int, device: str, env_seconds: float,
    dqn_learning_starts: int | None, progress: Callable[[str], None] = print,
) -> dict:  # fmt: skip
    """Build every contender, time them interleaved, measure ceilings; returns the report as a dict."""
    # As train.py does; one process, so SB3 and the ceilings run with the same allocator setting.
    nets.keep_freed_memory()
    dev = nets.resolve_device(device)
    rollout = PPO_CFG.num_envs * PPO_CFG.num_steps
    if ppo_steps <= 0 or ppo_steps % rollout:
        raise ValueError(f"--ppo-steps {ppo_steps}: use a positive multiple of the rollout, {rollout} steps")
    if dqn_steps <= 0 or dqn_steps % DQN_CFG.num_envs:
        raise ValueError(f"--dqn-steps {dqn_steps}: use a positive multiple of {DQN_CFG.num_envs} (the envs)")
    dqn_cfg = DQN_CFG
    if dqn_learning_starts is not None:
        dqn_cfg = dataclasses.replace(DQN_CFG, learning_starts=dqn_learning_starts)
    contenders = {
        ("ppo", "pixelrl"): lambda: ours_ppo(PPO_CFG, device),
        ("ppo", "pixelrl fp32"): lambda: ours_ppo(dataclasses.replace(PPO_CFG, precision="fp32"), device),
        # The env-groups lever on its own: all envs stepped at once, then one forward pass for all.
        ("ppo", "pixelrl 1 env group"): lambda: ours_ppo(dataclasses.replace(PPO_CFG, env_groups=1), device),
        ("ppo", "sb3"): lambda: sb3_ppo(PPO_CFG, device),
        ("dqn", "pixelrl"): lambda: ours_dqn(dqn_cfg, device),
        ("dqn", "pixelrl fp32"): lambda: ours_dqn(dataclasses.replace(dqn_cfg, precision="fp32"), device),
        ("dqn", "sb3"): lambda: sb3_dqn(dqn_cfg, device),
    }
    default = nets.choose_precision(dev, PPO_CFG.precision)
    precision_of = {key: contender_precision(key[1], default) for key in contenders}
    steps = {"ppo": ppo_steps, "dqn": dqn_steps}
    runners, extras, sps = {}, {}, {key: [] for key in contenders}
    for key, build in contenders.items():
        progress(f"building and warming up {key[1]} {key[0].upper()}")
        nets.set_tf32(dev, precision_of[key] == "tf32")  # process-wide switches: set before each turn
        runners[key], extras[key] = build()
    precisions = tuple(dict.fromkeys((default, "fp32")))  # the ceilings: ours by default, and fp32
    algos = (("ppo", PPO_CFG, compute_ceiling_ppo), ("dqn", dqn_cfg, compute_ceiling_dqn))
    env_all: dict[str, list[float]] = {algo: [] for algo, _, _ in algos}
    compute_all: dict[tuple[str, str], list[float]] = {(a, p): [] for a, _, _ in algos for p in precisions}
    for r in range(repeats):
        for key, runner in runners.items():
            nets.set_tf32(dev, precision_of[key] == "tf32")
            seconds = runner(steps[key[0]])
            sps[key].append(steps[key[0]] / seconds)
            progress(f"repeat {r + 1}/{repeats}: {key[1]} {key[0].upper()} {sps[key][-1]:.0f} steps/s")
        # The ceilings are timed in every repeat too, beside the contenders, so that a slower or faster
        # spell of this shared machine moves the ceiling and the contenders alike.
        for algo, cfg, compute in algos:
            env_all[algo].append(env_ceiling(cfg.num_envs, env_seconds))
            for p in precisions:
                compute_all[(algo, p)].append(compute(dataclasses.replace(cfg, precision=p), dev))
        progress(f"repeat {r + 1}/{repeats}: ceilings, env only " +
                 ", ".join(f"{a.upper()} {v[-1]:.0f}" for a, v in env_all.items()) + " steps/s")  # fmt: skip
    ceilings = {}
    for (algo, precision), compute_values in compute_all.items():
        env_sps, compute_sps = statistics.median(env_all[algo]), statistics.median(compute_values)
        ceilings[(algo, precision)] = {
            "env_sps": env_sps, "compute_sps": compute_sps,
            "ceiling_sps": serial_ceiling(env_sps, compute_sps),
            "env_sps_all": env_all[algo], "compute_sps_all": compute_values,
        }  # fmt: skip
    rows = []
    for (algo, who), values in sps.items():
        sb3_median = statistics.median(sps[(algo, "sb3")])
        precision = precision_of[(algo, who)]
        median = statistics.median(values)
        # The ceilings are our env stack and our network's: they bound our rows, not SB3's.
        ceiling = ceilings[(algo, precision)]["ceiling_sps"] if who != "sb3" else None
        rows.append({
            "algo": algo, "who": who, "precision": precision, "steps": steps[algo], "repeats": repeats,
            "sps_median": median, "sps_min": min(values), "sps_max": max(values), "sps_all": values,
            "vs_sb3": median / sb3_median, "ceiling_sps": ceiling,
            "of_ceiling": median / ceiling if ceiling else None, **extras[(algo, who)],
        })  # fmt: skip
    return {
        "device": str(dev),
        "torch_threads": torch.get_num_threads(),
        "rows": rows,
        "ceilings": [{"algo": a, "precision": p, **v} for (a, p), v in ceilings.items()],
    }


# --- memory: recurrent PPO against PPO -----------------------------------------------------------------

# As PPO_CFG: SB3's value loss, so that the SB3 pair runs the same settings.
PPO_LSTM_CFG = ppo_lstm.Config(clip_value=False, vf_coef=1.0)


def memory_speed(
    *, steps: int, repeats: int, device: str, sb3: bool = True, progress: Callable[[str], None] = print
) -> list[dict]:
    """Agent steps/s on Pong of our PPO (4 stacked frames) and recurrent PPO (single frames, CleanRL's
    ppo_atari_lstm settings), and of SB3's PPO and SB3-contrib's RecurrentPPO where installed, timed
    interleaved for `steps` agent steps each, `repeats` times (`sb3=False`: ours only). Each row has the
    median, min and max."""
    nets.keep_freed_memory()
    contenders: dict[str, Callable[[], tuple[Runner, dict]]] = {
        "pixelrl ppo": lambda: ours_ppo(PPO_CFG, device),
        "pixelrl ppo-lstm": lambda: ours_ppo(PPO_LSTM_CFG, device, agent_module=ppo_lstm),
    }
    if sb3:
        contenders["sb3 PPO"] = lambda: sb3_ppo(PPO_CFG, device)
        try:
            import sb3_contrib  # noqa: F401
        except ImportError:
            progress("sb3-contrib is not installed (pip install sb3-contrib): its RecurrentPPO is not timed")
        else:
            contenders["sb3-contrib RecurrentPPO"] = lambda: sb3_recurrent_ppo(PPO_LSTM_CFG, device)
    runners, sps = {}, {who: [] for who in contenders}
    for who, build in contenders.items():
        progress(f"building and warming up {who}")
        runners[who] = build()[0]
    for r in range(repeats):
        for who, runner in runners.items():
            sps[who].append(steps / runner(steps))
            progress(f"repeat {r + 1}/{repeats}: {who} {sps[who][-1]:.0f} steps/s")
    return [{"who": who, "steps": steps, "repeats": repeats, "sps_median": statistics.median(v),
             "sps_min": min(v), "sps_max": max(v), "sps_all": v} for who, v in sps.items()]  # fmt: skip


# --- levers on the compute ceiling ----------------------------------------------------------------------


def levers(device: str = "auto", progress: Callable[[str], None] = print) -> list[dict]:
    """The PPO network's training step (minibatch 256) and acting step (batch 8) in samples/s under each
    lever: float32 vs TF32 (GPUs that have it) vs bfloat16 autocast (where native), eager vs torch.compile,
    1 vs 2 intra-op threads; with bfloat16, acting also with the weights re-cast in every call
    (`act_samples_per_s_recast`)."""
    nets.keep_freed_memory()
    dev = nets.resolve_device(device)
    native = {"fp32": True, "tf32": nets.tf32_supported(dev), "bf16": nets.bf16_supported(dev)}
    results = []
    for threads in sorted({1, torch.get_num_threads()}):
        for compiled in (False, True):
            for precision in (p for p, here in native.items() if here):
                net = nets.ActorCritic((4, 84, 84), 6, (64,)).to(dev)
                model = torch.compile(net) if compiled else net
                row = {"threads": threads, "compile": compiled, "precision": precision}
                try:
                    with nets.num_threads(threads):
                        train_s = network_seconds(model, 256, precision, dev, train=True)
                        act_s = network_seconds(model, 8, precision, dev, train=False)
                        row |= {"train_samples_per_s": 256 / train_s, "act_samples_per_s": 8 / act_s}
                        if precision == "bf16":  # the weights cast by autocast in every call instead of once
                            recast_s = network_seconds(model, 8, "bf16", dev, train=False, cast_once=False)
                            row["act_samples_per_s_recast"] = 8 / recast_s
                except Exception as exc:  # torch.compile needs a C++ toolchain on CPU; report, go on
                    row |= {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
                results.append(row)
                progress(json.dumps(row))
    return results
