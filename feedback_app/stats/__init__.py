"""Agreement and rating statistics in plain Python and numpy; nothing here imports Django."""

from feedback_app.stats.agreement import (
    cohen_kappa,
    cohen_kappa_interval,
    consensus_agreement,
    krippendorff_alpha,
    ordinal_value,
    pairwise_kappas,
    percent_agreement,
)
from feedback_app.stats.ratings import (
    bradley_terry,
    bradley_terry_bootstrap,
    trust_score,
    win_rate,
    wilson_interval,
)

__all__ = [
    "bradley_terry",
    "bradley_terry_bootstrap",
    "cohen_kappa",
    "cohen_kappa_interval",
    "consensus_agreement",
    "krippendorff_alpha",
    "ordinal_value",
    "pairwise_kappas",
    "percent_agreement",
    "trust_score",
    "win_rate",
    "wilson_interval",
]
