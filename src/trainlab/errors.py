"""Errors the user can act on. The CLI turns each into one line and exit status 2."""


class TrainlabError(Exception):
    """Base of every error trainlab reports to the user as one line (exit status 2)."""


class RecipeError(TrainlabError):
    """A recipe key is unknown, mistyped or out of range; the message starts with its path."""


class DataError(TrainlabError):
    """A data file is missing, truncated or inconsistent; the message names the file."""


class RunDirError(TrainlabError):
    """A run directory is missing or lacks what the command needs."""
