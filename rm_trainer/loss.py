"""The pairwise reward loss: Bradley-Terry for preferences, a soft 0.5 target for ties."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def pairwise_loss(
    chosen: Tensor,
    rejected: Tensor,
    margin: Tensor | None = None,
    weight: Tensor | None = None,
    tie: Tensor | None = None,
) -> Tensor:
    """Return the Bradley-Terry loss -log σ(r_chosen - r_rejected - margin), weighted batch mean.

    Rows flagged in ``tie`` (a bool tensor) are fitted with a soft target of 0.5 instead:
    BCE(σ(r_a - r_b), 0.5) = -½ log σ(d) - ½ log σ(-d), which is smallest (ln 2) at equal
    rewards and ignores the margin. The batch is the last dimension; leading dimensions (one
    per ensemble member) are averaged after the weighted mean over the batch, so each member
    gets the same gradient it would get alone.
    """
    diff = chosen - rejected
    preferred = -F.logsigmoid(diff if margin is None else diff - margin)
    if tie is None:
        losses = preferred
    else:
        tied = -0.5 * (F.logsigmoid(diff) + F.logsigmoid(-diff))
        losses = torch.where(tie, tied, preferred)
    if weight is None:
        return losses.mean()
    weight = weight.to(losses.dtype).expand_as(losses)
    return ((losses * weight).sum(-1) / weight.sum(-1).clamp_min(1e-12)).mean()
