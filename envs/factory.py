"""`make()`: one call from a game name to a batched gymnasium vector env, whatever the backend.

Only this package knows gymnasium's autoreset rules: every env made here autoresets in NEXT_STEP mode
(gymnasium's default, and EnvPool's): after a step with terminated or truncated set for env i, the *next*
step ignores env i's action and returns its reset observation with reward 0 and both flags False. So every
env reports, as dm_env and Dopamine do, whether each observation it returns is the FIRST of an episode:
`first_of_episode(info)`, True for every env after reset(), on that NEXT_STEP reset step, and (train mode)
on the continuation step after a life loss, which EpisodicLife reports as an episode end. Agents read the
flag and never track the previous step's done: a step whose returned observation is first is not a
transition (rollouts and replay skip it), and recurrent agents reset their state there.
"""

from __future__ import annotations

import difflib
import functools
import multiprocessing
import os
import signal
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import gymnasium as gym
import numpy as np

from envs.ale_backend import AleVectorEnv
from envs.atari import FIRST, STAT_LENGTH, STAT_SCORE, AtariOptions, Mode, WholeGame, ale_env, wrap_atari
from envs.backends import BACKENDS, Backend, ale_vector_available, choose_backend
from envs.envpool_backend import EnvPoolVectorEnv, atari_kwargs, envpool_available
from envs.pool import PoolVectorEnv, check_groups
from envs.resume import restore_single, single_state, to_data
from envs.video import GameVideos, VideoRecorder

MODES = ("train", "eval")
RESTORED = "restored"  # reset() info key: the observations continue saved games (`set_env_state`)
# Classic control with the velocities hidden: a POMDP for recurrent agents. Alias -> (id, options).
ALIASES = {"CartPole-NoVel": ("CartPole-v1", {"hide_velocity": True})}
CARTPOLE_POSITIONS = [0, 2]  # cart position, pole angle (1 and 3 are their velocities)
CLASSIC_OPTIONS = ("hide_velocity", "video_dir", "video_every")


@dataclass(frozen=True)
class GameSpec:
    kind: Literal["atari", "classic"]
    env_id: str  # "ALE/Pong-v5" | "CartPole-v1"
    name: str  # "Pong" | "CartPole-v1": EnvPool's task is f"{name}-v5" for Atari


def _registry() -> dict[str, GameSpec]:
    """Every accepted spelling (lower-case, no '_') -> its game. Atari: short name and ALE/X-v5 id."""
    import ale_py

    gym.register_envs(ale_py)
    table: dict[str, GameSpec] = {}
    for env_id, spec in gym.registry.items():
        entry = spec.entry_point if isinstance(spec.entry_point, str) else ""
        if env_id.startswith("ALE/") and env_id.endswith("-v5"):
            game = GameSpec("atari", env_id, env_id[4:-3])
            table[game.name] = table[env_id] = game
        elif "classic_control" in entry:
            table[env_id] = GameSpec("classic", env_id, env_id)
    for alias, (env_id, _) in ALIASES.items():
        table[alias] = table[env_id]
    return table


@functools.cache
def valid_names() -> dict[str, GameSpec]:
    return _registry()


def _key(name: str) -> str:
    return name.lower().replace("_", "").replace(" ", "")


def resolve(game: str) -> GameSpec:
    """Look a game up by short name ("Pong", case and '_' ignored) or id ("ALE/Pong-v5", "CartPole-v1");
    an unknown name raises ValueError listing the closest valid names."""
    names = valid_names()
    found = {_key(n): n for n in names}.get(_key(game))
    if found is not None:
        return names[found]
    close = difflib.get_close_matches(game, names, n=5, cutoff=0.5) or difflib.get_close_matches(
        game.lower(), [n.lower() for n in names], n=5, cutoff=0.5
    )
    hint = f"closest valid names: {', '.join(close)}" if close else "e.g. Pong, ALE/Pong-v5, CartPole-v1"
    raise ValueError(f"unknown game {game!r}; {hint}.")


def _hide_velocity(env: gym.Env) -> gym.Env:
    space = env.observation_space
    low, high = space.low[CARTPOLE_POSITIONS], space.high[CARTPOLE_POSITIONS]
    return gym.wrappers.TransformObservation(
        env, lambda o: o[CARTPOLE_POSITIONS], gym.spaces.Box(low, high, dtype=space.dtype)
    )


def alias_options(game: str) -> dict[str, Any]:
    """The options a game alias stands for ("CartPole-NoVel" -> {"hide_velocity": True}; {} for a plain
    name), so that a run can record them beside the game's id."""
    return dict({_key(alias): opts for alias, (_, opts) in ALIASES.items()}.get(_key(game), {}))


def atari_only_options(game: str, kind: str, **options: Any) -> dict[str, Any]:
    """The Atari protocol options that were given (not None), such as sticky or flicker; for a game of
    another kind any given one is refused, naming the option to drop."""
    given = {name: value for name, value in options.items() if value is not None}
    if given and kind != "atari":
        raise ValueError(f"--{next(iter(given))} applies to Atari games, not {game}; drop it")
    return given


class ClassicOptions(NamedTuple):
    hide_velocity: bool
    video_dir: str | None
    video_period: int


def _classic_options(game: str, spec: GameSpec, mode: Mode, options: dict[str, Any]) -> ClassicOptions:
    """Classic control takes hide_velocity (CartPole only), and video_dir / video_every with the meaning
    and defaults of `AtariOptions` (which also checks them: one source of truth)."""
    options = {**alias_options(game), **options}
    unknown = sorted(set(options) - set(CLASSIC_OPTIONS))
    if unknown:
        raise ValueError(
            f"unknown classic-control option(s) {unknown}; valid options are: {', '.join(CLASSIC_OPTIONS)}."
        )
    hide = bool(options.get("hide_velocity", False))
    if hide and not spec.env_id.startswith("CartPole"):
        raise ValueError(f"hide_velocity is defined for CartPole only, not {spec.env_id}.")
    video = AtariOptions(
        mode=mode, video_dir=options.get("video_dir"), video_every=options.get("video_every")
    )
    return ClassicOptions(hide, video.video_dir, video.video_period)


def make_single(game: str, *, mode: Mode = "train", env_index: int = 0, **options: Any) -> gym.Env:
    """One wrapped, unvectorised env (for env checkers and as a vector env's worker). Env 0 records video
    when `video_dir` is set (classic control then renders with render_mode="rgb_array"; no other env does,
    so that training without video pays nothing for it). Seeding is the caller's: reset(seed=...)."""
    if multiprocessing.parent_process() is not None:
        # A worker process (gymnasium's AsyncVectorEnv, SB3's SubprocVecEnv): a terminal's Ctrl-C and
        # `timeout`'s SIGTERM reach the whole process group, and the trainer stops, saves and closes the
        # workers itself. A worker that died of the signal first would turn that into a BrokenPipeError.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    spec = resolve(game)
    if spec.kind == "classic":
        classic = _classic_options(game, spec, mode, options)
        film = classic.video_dir is not None and env_index == 0
        if film:  # gymnasium draws with pygame off screen; without this SDL complains of no display
            os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        # No passive checker: gymnasium's own envs pass it, and its first-step checks are state that a
        # resumed env (envs/resume.py) would otherwise have to fake.
        env = gym.make(
            spec.env_id, disable_env_checker=True, **({"render_mode": "rgb_array"} if film else {})
        )
        if classic.hide_velocity:
            env = _hide_velocity(env)
        env = WholeGame(env)
        return VideoRecorder(env, classic.video_dir, classic.video_period) if film else env
    opts = AtariOptions.from_kwargs(mode, options)
    video = None
    if opts.video_dir is not None and env_index == 0:
        video = functools.partial(VideoRecorder, folder=opts.video_dir, every=opts.video_period)
    return wrap_atari(ale_env(spec.env_id, opts), opts, video)


class _EpisodeStarts(gym.vector.VectorWrapper):
    """The gymnasium backends' episode boundary: info[FIRST] marks each env whose returned observation is
    the first of an episode (all after reset(); after a step, the envs whose previous step ended, whose
    NEXT_STEP autoreset happens now). Also uses make()'s seed for the first reset, so env i starts from
    seed + i without the caller passing it."""

    def __init__(self, env: gym.vector.VectorEnv, seed: int) -> None:
        super().__init__(env)
        self._first_seed: int | None = seed
        self._first = np.ones(self.num_envs, dtype=bool)  # of the observations returned last
        self._ended = np.zeros(self.num_envs, dtype=bool)  # the last step ended these: they reset next
        # Both are replaced, never written in place: the caller may keep the arrays handed out.
        self._obs: Any = None  # the observations returned last
        self._restored: Any = None  # observations the next reset() returns: see set_state

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        if self._restored is not None:  # a resumed run: its games go on from the saved state
            obs, self._restored = self._restored, None
            return obs, {FIRST: self._first, RESTORED: True}
        seed = self._first_seed if seed is None else seed
        self._first_seed = None
        mask = (options or {}).get("reset_mask")  # gymnasium's partial reset: only these envs restart
        obs, info = self.env.reset(seed=seed, options=options)
        reset = np.ones(self.num_envs, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        self._first, self._ended = self._first | reset, self._ended & ~reset
        self._obs = obs
        return obs, {**info, FIRST: self._first}

    def step(self, actions: Any) -> tuple[Any, Any, np.ndarray, np.ndarray, dict]:
        obs, reward, terminated, truncated, info = self.env.step(actions)
        self._first, self._ended, self._obs = self._ended, terminated | truncated, obs
        return obs, reward, terminated, truncated, {**info, FIRST: self._first}

    def get_state(self) -> dict[str, Any] | None:
        """Every env's state and the last observations, as data; None where it cannot be saved: the async
        backend's workers keep their pending autoresets to themselves (see envs/resume.py for one env)."""
        if not can_restore(self) or self._obs is None:
            return None
        singles = [single_state(env) for env in self.env.envs]
        if any(s is None for s in singles):
            return None
        return {"envs": singles, "obs": to_data(self._obs), "first": to_data(self._first),
                "ended": to_data(self._ended)}  # fmt: skip

    def set_state(self, state: dict[str, Any]) -> None:
        """Put back what `get_state` saved; the next reset() returns the saved observations (info[RESTORED]
        says so) instead of starting new games."""
        sync = self.env  # a SyncVectorEnv (set_env_state checks)
        if len(state["envs"]) != self.num_envs:
            raise ValueError(f"the saved env state has {len(state['envs'])} envs, this run {self.num_envs}")
        for env, single in zip(sync.envs, state["envs"], strict=True):
            restore_single(env, single)
        self._first, self._ended = state["first"].numpy().copy(), state["ended"].numpy().copy()
        sync._autoreset_envs = self._ended.copy()  # gymnasium's NEXT_STEP: these reset at the next step
        self._obs = self._restored = state["obs"].numpy().copy()
        self._first_seed = None


def _validate(num_envs: int, mode: str, backend: str) -> None:
    if not isinstance(num_envs, int | np.integer) or num_envs < 1:
        raise ValueError(f"num_envs={num_envs!r} must be an integer >= 1 (the number of parallel games).")
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is not valid; use mode='train' (learning) or mode='eval' (scoring).")
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not valid; use one of {', '.join(BACKENDS)}.")


def _check_backend(backend: str, kind: str, gym_only: bool, video: bool) -> None:
    """Refuse a backend that is not installed or cannot do what was asked, naming the fix."""
    if backend == "envpool" and not envpool_available():
        raise ValueError(
            "backend='envpool' but `import envpool` failed; pip install envpool, or use backend='auto'."
        )
    if backend == "ale" and not ale_vector_available():
        raise ValueError("backend='ale' needs ale-py >= 0.11 (ale_py.vector_env); pip install -U ale-py.")
    if backend == "ale" and kind != "atari":
        raise ValueError("backend='ale' runs Atari games only; use backend='auto' for classic control.")
    if backend in ("envpool", "ale") and gym_only:
        raise ValueError(
            "preprocess='karpathy' and flicker are gymnasium wrappers; use backend='gymnasium' (or 'auto')."
        )
    if backend == "ale" and video:
        raise ValueError(
            "backend='ale' cannot record video (ale-py's vector env has no screen); use backend='auto', or "
            "turn training videos off (--video-every 0)."
        )


def make(
    game: str,
    num_envs: int = 1,
    *,
    seed: int = 0,
    mode: Mode = "train",
    backend: Backend = "auto",
    groups: int = 1,
    **options: Any,
) -> gym.vector.VectorEnv:
    """A gymnasium vector env of `num_envs` copies of `game` following the protocol of design §1.

    Atari observations are (N, k, 84, 84) uint8 (k = frame_stack, default 4); classic control keeps its
    float vectors. `options` are the fields of `AtariOptions` (classic control: hide_velocity for CartPole,
    video_dir and video_every, which film gymnasium's render of env 0, 400x600 for CartPole). Env i is
    seeded with seed + i at the first reset. Whole-game raw scores arrive in `info`; read them with
    `finished_episodes(info)`. Autoreset is gymnasium's NEXT_STEP mode: the step after a done returns the
    reset observation (reward 0); `first_of_episode(info)` marks it (and every observation that starts an
    episode), so that agents do not store it as a transition.

    backend: "sync" / "async" (gymnasium vector envs), "gymnasium" (async for several Atari envs, else
    sync), "envpool", "ale" (ale-py's own vector env, see envs/ale_backend.py for how it differs), or
    "auto": the fastest measured on this machine by `scripts/benchmark.py envs` among the backends that
    can do what was asked (`envs.choose_backend`). Karpathy preprocessing and flicker need the gymnasium
    wrappers, and the ale backend cannot film (video_dir): "auto" then avoids them, asking for them is
    refused.

    groups: on the pool backends (EnvPool, ale), step the envs in this many groups that can run in the
    background while the agent acts for another (`send(actions, group)` / `recv(group)`, see
    `envs.pool.PoolVectorEnv`); `step` is unchanged. The gymnasium backends step all envs at once.
    """
    _validate(num_envs, mode, backend)
    check_groups(num_envs, groups)
    spec = resolve(game)
    video = False
    if spec.kind == "atari":
        opts = AtariOptions.from_kwargs(mode, options)  # validate before starting any worker
        gym_only = opts.preprocess != "nature" or opts.flicker > 0
        video = opts.video_dir is not None
    else:
        classic = _classic_options(game, spec, mode, options)
        gym_only = False
        video = classic.video_dir is not None
    _check_backend(backend, spec.kind, gym_only, video)
    why = "asked for"
    if backend == "auto":
        backend, why = choose_backend(spec.kind, num_envs, gym_only, video)
    elif backend == "gymnasium":
        backend = "async" if spec.kind == "atari" and num_envs > 1 else "sync"

    if backend == "ale":
        venv: gym.vector.VectorEnv = AleVectorEnv(spec.env_id, num_envs, seed, opts, groups=groups)
    elif backend == "envpool":
        if spec.kind == "atari":
            venv = EnvPoolVectorEnv(
                f"{spec.name}-v5",
                num_envs,
                seed,
                groups=groups,
                life_loss_ends=opts.use_episodic_life,
                clip_rewards=opts.use_clip_rewards,
                video=None if opts.video_dir is None else GameVideos(opts.video_dir, opts.video_period),
                **atari_kwargs(opts),
            )
        else:
            keep = CARTPOLE_POSITIONS if classic.hide_velocity else None
            film = None if classic.video_dir is None else GameVideos(classic.video_dir, classic.video_period)
            venv = EnvPoolVectorEnv(spec.env_id, num_envs, seed, groups=groups, keep_obs=keep, video=film)
    else:
        worker = functools.partial(make_single, game, mode=mode, **options)
        fns = [functools.partial(worker, env_index=i) for i in range(num_envs)]
        venv = gym.vector.AsyncVectorEnv(fns) if backend == "async" else gym.vector.SyncVectorEnv(fns)
        venv = _EpisodeStarts(venv, seed)
    venv.action_space.seed(seed)
    venv.metadata = {**venv.metadata, "backend": backend, "backend_why": why}  # see `backend_of`
    return venv


def backend_of(env: gym.vector.VectorEnv) -> str:
    """Which backend steps `env` (made by `make`), and why it was chosen: "envpool (fastest measured...)"."""
    return f"{env.metadata['backend']} ({env.metadata['backend_why']})"


def finished_episodes(info: dict[str, Any]) -> list[tuple[int, float, int]]:
    """(env index, raw game score, length in agent steps) of every whole game that ended in this step,
    from the info dict of `step()` on any env made by `make` (any backend). Life losses are not games."""
    mask = info.get(f"_{STAT_SCORE}")
    if mask is None:
        return []
    return [(int(i), float(info[STAT_SCORE][i]), int(info[STAT_LENGTH][i])) for i in np.flatnonzero(mask)]


def first_of_episode(info: dict[str, Any]) -> np.ndarray:
    """(N,) bool: whether each observation returned with `info` is the first of an episode, from the info
    dict of `reset()`, `step()` or (EnvPool groups) `recv(group)`, whose envs it covers, on any env made by
    `make`. True for every env after reset(), on the NEXT_STEP reset step (the step after terminated or
    truncated: that step is not a transition) and, in train mode, on the continuation after a life loss."""
    first = info.get(FIRST)
    if first is None:
        raise KeyError(f"info has no {FIRST!r} flag: only the vector envs of envs.make report episode starts")
    return first


def frames_per_step(game: str, **options: Any) -> int:
    """Emulator frames per agent step of the env that `make(game, **options)` builds (Atari: its frame skip;
    classic control: 1), so that budgets in frames and agent steps convert without building it."""
    if resolve(game).kind != "atari":
        return 1
    return AtariOptions.from_kwargs("train", options).frame_skip


def group_slices(env: gym.vector.VectorEnv) -> list[slice]:
    """The env indices of each group `env` steps its envs in (`make(..., groups=G)`; only pools have more
    than one): `env.send(actions, g)` / `env.recv(g)` step group g."""
    return env.group_slices if isinstance(env, PoolVectorEnv) else [slice(0, env.num_envs)]


def emulator_threads_per_group(env: gym.vector.VectorEnv) -> int:
    """Emulator threads that step one group in the background (0 where nothing runs in the background)."""
    return env.threads_per_group if isinstance(env, PoolVectorEnv) else 0


def num_groups(env: gym.vector.VectorEnv) -> int:
    """How many groups `env` steps its envs in (`make(..., groups=G)`; pool backends may have more)."""
    return len(group_slices(env))


def env_state(env: gym.vector.VectorEnv) -> dict[str, Any] | None:
    """The state of every env of `env` (made by `make`) and its last observations, as tensors and JSON
    scalars (a checkpoint can hold it), or None where the backend cannot save it: only the sync backend
    can (classic control always runs there). EnvPool and ale-py's vector env keep theirs in C++, and
    gymnasium's async workers keep their pending autoresets to themselves."""
    return env.get_state() if isinstance(env, _EpisodeStarts) else None


def can_restore(env: gym.vector.VectorEnv) -> bool:
    """Whether `set_env_state` can restore into `env` (the sync backend)."""
    return isinstance(env, _EpisodeStarts) and isinstance(env.env, gym.vector.SyncVectorEnv)


def set_env_state(env: gym.vector.VectorEnv, state: dict[str, Any]) -> None:
    """Restore `env_state`'s result into an env made with the same arguments (seed aside). Its next
    reset() returns the saved observations with info[RESTORED] set instead of starting new games, so a
    training loop that starts with reset() goes on where the saved one was."""
    if not can_restore(env):
        raise ValueError(
            f"{env.metadata.get('backend')} envs cannot restore a saved state; use the sync backend"
        )
    env.set_state(state)


def restored(info: dict[str, Any]) -> bool:
    """Whether reset()'s observations continue saved games (`set_env_state`) rather than start new ones."""
    return bool(info.get(RESTORED, False))
