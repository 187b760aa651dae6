from pathlib import Path

from feedback_app.training_bridge.sources import dpo_config, fit_config, generation_config, generator_source, reward_backbone


def test_default_models_are_found_offline():
    """Without settings, the base generator is the packaged SmolLM2 GGUF and the backbone the packaged MiniLM."""
    folder, gguf = generator_source()
    assert (Path(folder) / gguf).exists()
    assert (Path(reward_backbone()) / "config.json").exists()


def test_settings_reach_the_configs(settings, tmp_path):
    """GENERATION_*, REWARD_*, DPO_* and TRAINING_DEVICE become rm_trainer's configs; overrides win."""
    settings.GENERATION_MAX_NEW_TOKENS, settings.TRAINING_DEVICE, settings.REWARD_ENSEMBLE_SIZE = 17, "cpu", 3
    settings.MODEL_STORE, settings.DPO_EVAL_PROMPTS = str(tmp_path), 9
    assert generation_config(seed=5).max_new_tokens == 17 and generation_config(seed=5).seed == 5
    config = fit_config(tier="full", warm_start_path="reward/rm-00001")
    assert config.tier == "full" and config.ensemble_size == 3 and config.warm_start == str(tmp_path / "reward/rm-00001" / "encoder")
    assert config.embedding_cache_dir == str(tmp_path / "embeddings") and fit_config(tier="fast", warm_start_path=None).warm_start is None
    assert dpo_config().eval_prompts == 9 and dpo_config().device == "cpu"
