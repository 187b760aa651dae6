"""The site's name for a run that was stopped while it trained: rm_trainer's cancellations, translated."""


class RunStopped(Exception):
    """The run was failed or cancelled by someone else while it trained."""
