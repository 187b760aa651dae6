"""The site's names for work stopped on request: rm_trainer's cancellations, translated."""


class RunStopped(Exception):
    """The run was failed or cancelled by someone else while it trained."""


class GenerationStopped(Exception):
    """Sampling replies was stopped on request (the worker is stopping) before it finished; nothing came back."""
