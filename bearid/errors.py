"""The user errors a stage reports in one line; kept apart so that raising one drags in no other module."""


class ParamsError(ValueError):
    """A bad value in params.yaml; the message names the key."""


class SourceError(RuntimeError):
    """A source could not produce URLs; the message says which and what to do."""


class DecisionsError(ValueError):
    """A bad line in the decisions file; the message names the line."""


USER_ERRORS = (ParamsError, SourceError, DecisionsError, FileNotFoundError)
