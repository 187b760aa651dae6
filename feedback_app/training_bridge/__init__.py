"""The one door between the site and ``rm_trainer``: services and tasks call ``training_bridge.<name>``.

One idea a module: ``conversion`` (rows to rm_trainer's dataclasses, prompts to text, results
to site metrics), ``sources`` (models and configs from settings), ``holder`` (the models one
process has loaded), ``reward`` and ``policy`` (the operations), ``store`` (MODEL_STORE on disk),
``errors`` (rm_trainer's cancellations as the site's ``RunStopped``), ``judge`` (the local
generative judge's chat model). ``rm_trainer`` is imported
inside the functions that need torch, never at module level, so a web process that imports the
bridge does not load torch; scoring for the API runs in a worker (queue "score").
"""

from feedback_app.training_bridge.conversion import (
    is_validation,
    labels_aggregate,
    pair_facts,
    pair_facts_kept,
    policy_update_metrics,
    preference_pairs,
    prompt_as_text,
    read_preference_file,
    reward_fit_metrics,
    reward_validation_fraction,
    rewrite_pairs,
    split_dialogues,
    text_as_turns,
    validation_summary,
)
from feedback_app.training_bridge.errors import GenerationStopped, RunStopped
from feedback_app.training_bridge.holder import ModelHolder, libraries_import
from feedback_app.training_bridge.judge import judge_chat_answers
from feedback_app.training_bridge.policy import (
    Candidates,
    candidates_generate,
    dpo_train,
    online_pairs,
    pairs_choose,
    policy_export,
    policy_materialise_base,
    policy_win_rate,
    replies_generate,
    replies_rerank,
)
from feedback_app.training_bridge.reward import comparisons_prob_a_wins, comparisons_rm_judge, pairs_evaluate, reward_fit, reward_scores
from feedback_app.training_bridge.sources import generation_config, generator_source, reward_backbone
from feedback_app.training_bridge.store import (
    checkpoint_name_free,
    checkpoint_partial_remove,
    checkpoint_partials,
    checkpoint_remove,
    checkpoint_store,
    embedding_cache_dir,
    embeddings_compact,
    embeddings_prune,
    version_folder,
)

__all__ = [
    "Candidates", "GenerationStopped", "ModelHolder", "RunStopped", "candidates_generate", "checkpoint_name_free", "checkpoint_partial_remove", "checkpoint_partials", "checkpoint_remove",
    "checkpoint_store", "comparisons_prob_a_wins", "comparisons_rm_judge", "dpo_train", "embedding_cache_dir", "embeddings_compact", "embeddings_prune",
    "generation_config", "generator_source", "is_validation", "judge_chat_answers", "labels_aggregate", "libraries_import", "online_pairs", "pair_facts", "pair_facts_kept", "pairs_choose", "pairs_evaluate",
    "policy_export", "policy_materialise_base", "policy_update_metrics", "policy_win_rate", "preference_pairs", "prompt_as_text",
    "read_preference_file", "replies_generate", "replies_rerank", "reward_backbone", "reward_fit", "reward_fit_metrics", "reward_scores", "reward_validation_fraction", "rewrite_pairs", "split_dialogues",
    "text_as_turns", "validation_summary", "version_folder",
]
