"""An ensemble of small reward heads on fixed embeddings, trained all at once.

Each of the K members is a one-hidden-layer MLP with its own seed and its own bootstrap sample
of the training pairs. Their weights are stacked ([K, dim, hidden], ...), so one batched matmul
trains or runs every member: a refit on thousands of pairs takes seconds on a CPU. The mean of
the members is the reward; their spread is the model's uncertainty.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rm_trainer.loss import pairwise_loss

HEADS_FILE = "heads.pt"
HEADS_CONFIG = "heads.json"


class RewardEnsemble(nn.Module):
    """K MLP heads mapping an embedding to a reward each; inputs are standardised first."""

    def __init__(self, members: int, dim: int, hidden: int, *, seed: int = 0) -> None:
        super().__init__()
        self.members, self.dim, self.hidden = members, dim, hidden
        self.w1 = nn.Parameter(torch.empty(members, dim, hidden))
        self.b1 = nn.Parameter(torch.zeros(members, 1, hidden))
        self.w2 = nn.Parameter(torch.empty(members, hidden, 1))
        self.b2 = nn.Parameter(torch.zeros(members, 1, 1))
        self.register_buffer("feature_mean", torch.zeros(dim))
        self.register_buffer("feature_std", torch.ones(dim))
        self.history: dict = {}  # how fit_ensemble trained it; not saved
        for k in range(members):
            generator = torch.Generator().manual_seed(seed * 1_000_003 + k)
            # The default init of nn.Linear: uniform within ±1/sqrt(fan_in).
            self.w1.data[k].uniform_(-1 / math.sqrt(dim), 1 / math.sqrt(dim), generator=generator)
            self.w2.data[k].uniform_(-1 / math.sqrt(hidden), 1 / math.sqrt(hidden), generator=generator)

    def forward(self, x: Tensor) -> Tensor:
        """Return member rewards [K, n] for embeddings [n, dim] (shared) or [K, n, dim] (per member)."""
        x = (x.to(self.w1.dtype) - self.feature_mean) / self.feature_std
        hidden = F.gelu(torch.matmul(x, self.w1) + self.b1)
        return (torch.matmul(hidden, self.w2) + self.b2).squeeze(-1)

    def set_standardisation(self, embeddings: Tensor) -> None:
        """Standardise inputs with the mean and spread of these training embeddings."""
        self.feature_mean.copy_(embeddings.mean(0))
        self.feature_std.copy_(embeddings.std(0).clamp_min(1e-6) if len(embeddings) > 1 else torch.ones(self.dim))

    @torch.inference_mode()
    def member_rewards(self, embeddings: np.ndarray | Tensor, batch_size: int = 4096) -> np.ndarray:
        """Return float32 member rewards [K, n] for embeddings [n, dim]."""
        x = torch.as_tensor(embeddings, dtype=torch.float32)
        device = self.w1.device
        parts = [self(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
        return torch.cat(parts, 1).numpy() if parts else np.empty((self.members, 0), dtype=np.float32)

    def save(self, folder: str | os.PathLike[str]) -> None:
        """Write the weights and the shape into ``folder``."""
        torch.save({k: v.cpu() for k, v in self.state_dict().items()}, Path(folder) / HEADS_FILE)
        shape = {"members": self.members, "dim": self.dim, "hidden": self.hidden}
        (Path(folder) / HEADS_CONFIG).write_text(json.dumps(shape))

    @classmethod
    def load(cls, folder: str | os.PathLike[str], device: torch.device | str = "cpu") -> RewardEnsemble:
        """Return the ensemble saved in ``folder``."""
        shape = json.loads((Path(folder) / HEADS_CONFIG).read_text())
        ensemble = cls(shape["members"], shape["dim"], shape["hidden"])
        ensemble.load_state_dict(torch.load(Path(folder) / HEADS_FILE, map_location="cpu", weights_only=True))
        return ensemble.to(device).eval()


def fit_ensemble(
    chosen: np.ndarray | Tensor,
    rejected: np.ndarray | Tensor,
    *,
    margin: np.ndarray | None = None,
    weight: np.ndarray | None = None,
    tie: np.ndarray | None = None,
    members: int = 5,
    hidden: int = 256,
    epochs: int = 30,
    patience: int = 3,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    weight_decay: float = 1e-2,
    seed: int = 0,
    bootstrap: bool = True,
    device: torch.device | str = "cpu",
    on_epoch: Callable[[int, int, float], None] | None = None,
    init: RewardEnsemble | None = None,
) -> RewardEnsemble:
    """Return an ensemble fitted to the pairwise loss on embeddings of chosen and rejected [N, dim].

    Member k draws its bootstrap sample and its batch order from seed ``seed + k``; every
    step runs all members on their own batch at once. Each member keeps the weights of its
    epoch with the lowest loss on its out-of-bag pairs (those its bootstrap sample left out,
    about 37%), and training ends once no member has improved for ``patience`` epochs
    (0: run every epoch and keep the last weights), so the number of epochs adapts to the
    amount of data.
    ``on_epoch(epoch, epochs, loss)`` is called after each epoch and may raise to stop.
    ``init``: heads of the same shape to start from, their weights and input standardisation
    (a warm start). Early stopping picks among the epochs trained, as for a cold start: the
    starting heads' out-of-bag loss is no fair bar, as they trained on many of those pairs.
    The ensemble's ``history`` records the epochs run and each member's best out-of-bag loss.
    """
    device = torch.device(device)
    chosen_t = torch.as_tensor(chosen, dtype=torch.float32, device=device)
    rejected_t = torch.as_tensor(rejected, dtype=torch.float32, device=device)
    n, dim = chosen_t.shape
    if n == 0:
        raise ValueError("fit_ensemble needs at least one pair")
    margin_t = _column(margin, n, 0.0, device)
    weight_t = _column(weight, n, 1.0, device)
    tie_t = _column(tie, n, False, device, dtype=torch.bool)

    ensemble = RewardEnsemble(members, dim, hidden, seed=seed).to(device)
    if init is None:
        ensemble.set_standardisation(torch.cat([chosen_t, rejected_t]))
    elif (init.members, init.dim, init.hidden) != (members, dim, hidden):
        raise ValueError(f"init heads are {init.members} x {init.dim} x {init.hidden}, this fit's {members} x {dim} x {hidden}")
    else:
        ensemble.load_state_dict(init.state_dict())
    optimizer = torch.optim.AdamW(ensemble.parameters(), lr=learning_rate, weight_decay=weight_decay)
    rngs = [np.random.default_rng(seed * 1_000_003 + k) for k in range(members)]
    samples = [rng.integers(0, n, n) if bootstrap else np.arange(n) for rng in rngs]
    out_of_bag = torch.ones(members, n, device=device)
    for k, sample in enumerate(samples):
        out_of_bag[k, torch.as_tensor(sample, device=device)] = 0.0
    oob_weight = weight_t * out_of_bag  # [K, N]
    has_oob = oob_weight.sum(1) > 0
    best_loss = torch.full((members,), float("inf"), device=device)
    best = {name: p.detach().clone() for name, p in ensemble.named_parameters()}
    batch_size = min(batch_size, n)

    stale, epochs_run = 0, 0
    for epoch in range(epochs):
        ensemble.train()
        order = torch.as_tensor(np.stack([s[rng.permutation(n)] for s, rng in zip(samples, rngs)]), device=device)
        total, steps = torch.zeros((), device=device), 0
        for start in range(0, n - batch_size + 1, batch_size):  # drop the ragged last batch
            index = order[:, start : start + batch_size]  # [K, B]
            rewards = ensemble(torch.cat([chosen_t[index], rejected_t[index]], 1))  # [K, 2B]
            loss = pairwise_loss(
                rewards[:, :batch_size], rewards[:, batch_size:], margin_t[index], weight_t[index], tie_t[index]
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, steps = total + loss.detach(), steps + 1
        epochs_run = epoch + 1

        oob_loss = _member_losses(ensemble, chosen_t, rejected_t, margin_t, oob_weight, tie_t)
        improved = (oob_loss < best_loss - 1e-4) | ~has_oob  # a member with no out-of-bag pair keeps its latest
        best_loss = torch.where(improved & has_oob, oob_loss, best_loss)
        for name, p in ensemble.named_parameters():
            best[name][improved] = p.detach()[improved]
        stale = 0 if (improved & has_oob).any() else stale + 1
        if on_epoch is not None:
            on_epoch(epoch + 1, epochs, total.item() / max(steps, 1))
        if patience and bootstrap and has_oob.any() and stale >= patience:
            break

    if patience and bootstrap:
        with torch.no_grad():
            for name, p in ensemble.named_parameters():
                p.copy_(best[name])
    ensemble.history = {"epochs": epochs_run, "warm": init is not None, "oob_loss": [round(x, 5) if math.isfinite(x) else None for x in best_loss.tolist()]}
    return ensemble.eval()


@torch.no_grad()
def _member_losses(ensemble: RewardEnsemble, chosen: Tensor, rejected: Tensor, margin: Tensor, weight: Tensor, tie: Tensor) -> Tensor:
    """Return each member's weighted pairwise loss over all pairs, shape [K]; ``weight`` is [K, N]."""
    ensemble.eval()
    r_chosen = torch.as_tensor(ensemble.member_rewards(chosen), device=chosen.device)
    r_rejected = torch.as_tensor(ensemble.member_rewards(rejected), device=chosen.device)
    return torch.stack([
        pairwise_loss(r_chosen[k], r_rejected[k], margin, weight[k], tie) for k in range(ensemble.members)
    ])


def _column(values, n: int, default, device: torch.device, dtype: torch.dtype = torch.float32) -> Tensor:
    if values is None:
        return torch.full((n,), default, dtype=dtype, device=device)
    return torch.as_tensor(np.asarray(values), dtype=dtype, device=device)
