"""Run a stage's body so that bad input ends in one clear line, not a traceback."""

from __future__ import annotations

import sys
from typing import Callable

from .errors import USER_ERRORS


def run(name: str, body: Callable[[], object]) -> None:
    """Call `body`; on a user error print `<stage>: error: <message>` and exit with status 2."""
    try:
        body()
    except USER_ERRORS as e:
        print(f"{name}: error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
