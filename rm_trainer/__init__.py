"""The machine-learning half of the feedback studio.

Reward models, their losses and ensembles, the generator (policy), pair selection, DPO and
the checkpoint store. This package imports the standard library, numpy, torch, transformers
and peft only. It never reads Django settings or the environment: callers pass configuration
in as the frozen dataclasses of ``rm_trainer.config`` and data as those of ``rm_trainer.data``.
"""
