"""Architecture parameters θ and how they choose per layer: softmax, Gumbel-softmax, hard Gumbel.

- `softmax`: every candidate runs, weighted by softmax(θ) (no noise; DARTS-style relaxation).
- `gumbel`: every candidate runs, weighted by softmax((θ + g) / τ), g ~ Gumbel(0, 1) (FBNet).
- `gumbel_hard`: only the argmax of the Gumbel-softmax sample runs; its output is scaled by
  `1 - sg(p_k) + p_k` (value 1), which carries the straight-through gradient, while time and memory
  are those of a single path. (DNAS's θ steps use the score function instead: hwnas.strategies.dnas.)

The noise comes from a generator seeded by the caller (the step number), so every DDP rank
and every resumed run draws the same noise at the same step.
"""

from __future__ import annotations

import math
from enum import Enum

import torch
import torch.nn.functional as F
from torch import nn

from ..choices import MIXING_MODES
from ..errors import HwnasError
from .choice import Choice
from .supernet import Supernet


class Mixing(Enum):
    """How θ mixes the candidates of a layer; parsed once from `--mode`."""

    SOFTMAX = "softmax"
    GUMBEL = "gumbel"
    GUMBEL_HARD = "gumbel_hard"

    @classmethod
    def parse(cls, mode: str) -> Mixing:
        try:
            return cls(mode)
        except ValueError:
            raise HwnasError(f"mixing mode {mode!r} is not one of {', '.join(MIXING_MODES)}") from None

    @property
    def soft(self) -> bool:
        """Every candidate runs (a mixture is trained), as opposed to one sampled path."""
        return self is not Mixing.GUMBEL_HARD


class ArchParams(nn.Module):
    """θ: one vector of logits per searchable layer, over that layer's candidates."""

    def __init__(self, supernet: Supernet) -> None:
        super().__init__()
        self.ops = [layer.ops for layer in supernet.layers]
        self.logits = nn.ParameterList(nn.Parameter(torch.zeros(len(ops))) for ops in self.ops)

    def probs(self) -> list[torch.Tensor]:
        return [F.softmax(theta, -1) for theta in self.logits]

    def argmax(self) -> list[str]:
        return [ops[int(theta.argmax())] for ops, theta in zip(self.ops, self.logits, strict=True)]

    def sample(self, generator: torch.Generator) -> list[str]:
        """One architecture drawn from softmax(θ), layer by layer."""
        return [
            ops[int(torch.multinomial(p.detach().cpu(), 1, generator=generator))]
            for ops, p in zip(self.ops, self.probs(), strict=True)
        ]

    def entropy(self) -> list[float]:
        return [float(-(p * p.clamp_min(1e-12).log()).sum()) for p in (q.detach() for q in self.probs())]

    def choices(self, mode: Mixing, temperature: float, seed: int) -> list[Choice]:
        """Per-layer choices for one forward pass of the supernet."""
        if mode is Mixing.SOFTMAX:
            return list(self.probs())
        generator = torch.Generator().manual_seed(seed)
        out: list[Choice] = []
        for theta in self.logits:
            u = torch.rand(theta.shape, generator=generator).clamp_(1e-10, 1 - 1e-10).to(theta.device)
            soft = F.softmax((theta - (-u.log()).log()) / temperature, -1)
            if mode is Mixing.GUMBEL:
                out.append(soft)
            else:
                k = int(soft.argmax())
                out.append((k, 1 - soft[k].detach() + soft[k]))
        return out


FBNET_DECAY, FBNET_EPOCHS = 0.956, 90


def temperature_at(epoch: int, start: float = 5.0, decay: float | None = None, epochs: int = FBNET_EPOCHS) -> float:
    """FBNet's schedule τ = start · decay^epoch; without a decay, FBNet's 90 epochs of 0.956 compressed to
    `epochs`, so a short search anneals as far as FBNet's does (to start · 0.956^90 ≈ start / 58)."""
    if decay is None:
        decay = FBNET_DECAY ** (FBNET_EPOCHS / max(epochs, 1))
    return start * math.pow(decay, epoch)
