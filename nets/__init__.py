"""nets: the supervised-learning core and the backbones every agent shares."""

from nets.augment import compose, gaussian_noise, random_crop, random_flip, random_shift
from nets.backbones import MLP, ImpalaCNN, LSTMCore, NatureCNN, backbone_for
from nets.device import (
    PRECISIONS,
    autocast,
    bf16_supported,
    choose_precision,
    cuda_capability,
    keep_freed_memory,
    num_threads,
    resolve_device,
    seed_everything,
    set_tf32,
    tf32_supported,
    to_device,
)
from nets.fit import History, accuracy, evaluate, fit
from nets.heads import (
    ActorCritic,
    BackboneWithHead,
    CategoricalPolicyHead,
    QHead,
    RecurrentActorCritic,
    ValueHead,
)
from nets.inference import DeviceNet, InferenceCopy
from nets.layers import orthogonal_, to_float
from nets.losses import cross_entropy, entropy, get_loss, huber, mse
from nets.optim import lr_factor, make_optimizer

__all__ = [
    "MLP",
    "PRECISIONS",
    "ActorCritic",
    "BackboneWithHead",
    "CategoricalPolicyHead",
    "DeviceNet",
    "History",
    "ImpalaCNN",
    "InferenceCopy",
    "LSTMCore",
    "NatureCNN",
    "QHead",
    "RecurrentActorCritic",
    "ValueHead",
    "accuracy",
    "autocast",
    "backbone_for",
    "bf16_supported",
    "choose_precision",
    "compose",
    "cross_entropy",
    "cuda_capability",
    "entropy",
    "evaluate",
    "fit",
    "gaussian_noise",
    "get_loss",
    "huber",
    "keep_freed_memory",
    "lr_factor",
    "make_optimizer",
    "mse",
    "num_threads",
    "orthogonal_",
    "random_crop",
    "random_flip",
    "random_shift",
    "resolve_device",
    "seed_everything",
    "set_tf32",
    "tf32_supported",
    "to_device",
    "to_float",
]
