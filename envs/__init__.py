"""Atari from pixels (and classic control) as batched gymnasium vector envs: `make`, `finished_episodes`,
`first_of_episode`.

Usage (see envs/factory.py for the autoreset rule, envs/atari.py for the protocol and its options):

envs = make("Pong", num_envs=8, seed=1)          # (8, 4, 84, 84) uint8, training protocol
obs, info = envs.reset()
obs, reward, terminations, truncations, info = envs.step(envs.action_space.sample())
for env_index, score, length in finished_episodes(info): ...   # raw scores of whole games
first = first_of_episode(info)   # (8,) bool: obs[i] starts an episode (all after reset; the NEXT_STEP
                                 # reset step after a done; a training life-loss continuation): the step
                                 # that returned it is not a transition
"""

from envs import video
from envs.atari import AtariOptions
from envs.backends import (
    BACKENDS,
    Backend,
    choose_backend,
    machine_key,
    measured_speeds,
    record_speeds,
    speeds_file,
)
from envs.envpool_backend import envpool_available
from envs.factory import (
    alias_options,
    atari_only_options,
    backend_of,
    can_restore,
    emulator_threads_per_group,
    env_state,
    finished_episodes,
    first_of_episode,
    frames_per_step,
    group_slices,
    make,
    make_single,
    num_groups,
    resolve,
    restored,
    set_env_state,
    valid_names,
)

__all__ = [
    "alias_options",
    "atari_only_options",
    "BACKENDS",
    "Backend",
    "AtariOptions",
    "backend_of",
    "can_restore",
    "choose_backend",
    "envpool_available",
    "emulator_threads_per_group",
    "env_state",
    "finished_episodes",
    "first_of_episode",
    "frames_per_step",
    "group_slices",
    "machine_key",
    "measured_speeds",
    "make",
    "make_single",
    "num_groups",
    "record_speeds",
    "restored",
    "set_env_state",
    "resolve",
    "speeds_file",
    "valid_names",
    "video",
]
