"""Heads that turn backbone features into Q-values, policies and values."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.distributions import Categorical

from nets.backbones import LSTMCore, backbone_for
from nets.layers import orthogonal_


class QHead(nn.Module):
    """Q-values for each action; `dueling=True` splits value and advantage (Wang et al. 2016, eq. 9)."""

    def __init__(self, in_dim: int, num_actions: int, *, dueling: bool = False, hidden: int = 0) -> None:
        super().__init__()
        self.dueling = dueling

        def stream(out: int) -> nn.Module:
            if hidden:
                return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out))
            return nn.Linear(in_dim, out)

        self.advantage = orthogonal_(stream(num_actions), gain=1.0)
        self.value = orthogonal_(stream(1), gain=1.0) if dueling else None

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        adv = self.advantage(features)  # (B, A)
        if self.value is None:
            return adv
        # Subtracting the mean advantage makes V and A identifiable without changing the greedy action.
        return self.value(features) + adv - adv.mean(dim=-1, keepdim=True)


class CategoricalPolicyHead(nn.Module):
    """Logits over discrete actions; small init (gain 0.01) keeps the first policy near uniform."""

    def __init__(self, in_dim: int, num_actions: int) -> None:
        super().__init__()
        self.logits = orthogonal_(nn.Linear(in_dim, num_actions), gain=0.01)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.logits(features)

    def distribution(self, features: torch.Tensor) -> Categorical:
        return Categorical(logits=self.forward(features))


class ValueHead(nn.Module):
    """A scalar state value per input."""

    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.value = orthogonal_(nn.Linear(in_dim, 1), gain=1.0)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.value(features).squeeze(-1)


class ActorCritic(nn.Module):
    """Policy logits and state value: one shared Nature CNN for pixels (Mnih et al. 2016), separate tanh
    MLPs for actor and critic on vectors (as the PPO paper's MuJoCo nets)."""

    def __init__(self, obs_shape: Sequence[int], num_actions: int, hidden: Sequence[int] = (64, 64)) -> None:
        super().__init__()
        self.actor_body = backbone_for(obs_shape, hidden, activation=nn.Tanh)
        pixels = len(obs_shape) == 3  # one CNN serves both heads
        self.critic_body = None if pixels else backbone_for(obs_shape, hidden, activation=nn.Tanh)
        self.policy = CategoricalPolicyHead(self.actor_body.out_dim, num_actions)
        self.value = ValueHead(self.actor_body.out_dim)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (B, A), values (B,)) as float32, also under bfloat16 autocast."""
        features, _ = self.actor_body(obs)
        critic_features = features if self.critic_body is None else self.critic_body(obs)[0]
        return self.policy(features).float(), self.value(critic_features).float()


class RecurrentActorCritic(nn.Module):
    """Policy logits and state value through LSTMs over an encoder, fed a single observation per step, so
    the LSTM is what remembers. As `ActorCritic`: for pixels one Nature CNN and one LSTM serve both heads
    (CleanRL's ppo_atari_lstm); for vectors the actor and the critic each have their own ReLU MLP of
    `hidden` widths and LSTM (SB3-contrib's RecurrentPPO with a critic LSTM), so that the value loss,
    whose targets grow with the return, does not pull on the policy's memory. The state is passed in and
    out as tensors (h, c), each (1, B, lstm_hidden x cores), so that `nets.DeviceNet` can run it like any
    other network."""

    def __init__(
        self,
        obs_shape: Sequence[int],
        num_actions: int,
        hidden: Sequence[int] = (64,),
        lstm_hidden: int = 128,
    ) -> None:
        super().__init__()
        self.core = LSTMCore(backbone_for(obs_shape, hidden), lstm_hidden)
        pixels = len(obs_shape) == 3
        self.critic_core = None if pixels else LSTMCore(backbone_for(obs_shape, hidden), lstm_hidden)
        self.policy = CategoricalPolicyHead(lstm_hidden, num_actions)
        self.value = ValueHead(lstm_hidden)

    def initial_state(
        self, batch: int, device: torch.device | str = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        cores = 1 if self.critic_core is None else 2
        zeros = torch.zeros(1, batch, cores * self.core.out_dim, device=device)
        return zeros, zeros.clone()

    def forward(
        self, obs: torch.Tensor, h: torch.Tensor, c: torch.Tensor, first: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """obs (T, B, ...) with `first` (T, B) bool, or one step (B, ...) with `first` (B,): the state is
        zeroed before each step whose observation starts an episode. Returns (logits (.., A), values (..),
        h, c), float32 also under bfloat16 autocast."""
        if self.critic_core is None:
            features, (h, c) = self.core(obs, (h, c), first)
            return self.policy(features).float(), self.value(features).float(), h.float(), c.float()
        (h_pi, h_v), (c_pi, c_v) = h.chunk(2, -1), c.chunk(2, -1)
        features, (h_pi, c_pi) = self.core(obs, (h_pi, c_pi), first)
        critic_features, (h_v, c_v) = self.critic_core(obs, (h_v, c_v), first)
        h, c = torch.cat([h_pi, h_v], -1), torch.cat([c_pi, c_v], -1)
        return self.policy(features).float(), self.value(critic_features).float(), h.float(), c.float()


class BackboneWithHead(nn.Module):
    """backbone -> head as a plain `model(x)`, for supervised training with `fit`.

    `sequence=True` reads batch-first sequences (B, T, ...) through a recurrent backbone and keeps the
    last step's features, e.g. an 8x8 digit read row by row.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, *, sequence: bool = False) -> None:
        super().__init__()
        self.backbone, self.head, self.sequence = backbone, head, sequence

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.sequence:
            features, _ = self.backbone(x.transpose(0, 1))  # (T, B, H)
            return self.head(features[-1])
        features, _ = self.backbone(x)
        return self.head(features)
