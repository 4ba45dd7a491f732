"""The few domain exceptions users catch.

Every error a user can cause (a bad config, a missing file, a wrong shape) is a ``LstmkitError``. Its
message names the thing, the expectation and what was received, so the CLI prints it on one line
without a traceback.
"""


class LstmkitError(Exception):
    """Base class of every user-facing lstmkit error."""


class ConfigError(LstmkitError, ValueError):
    """A config file, key or override is unknown or has the wrong type."""


class DataError(LstmkitError, ValueError):
    """A dataset or input file is missing, corrupt, empty, non-finite or has the wrong shape."""


class ShapeError(LstmkitError, ValueError):
    """A tensor given to a model has the wrong shape."""


class ModelFolderError(LstmkitError, ValueError):
    """A saved model folder is missing files or holds something unreadable."""


class ReportError(LstmkitError, ValueError):
    """A run folder, sample, unit or signal given to a report or an inspection cannot be used."""
