"""The project's own errors: what the user can fix (missing data, a malformed file, a bad config
value). The command-line entry points print their message alone and exit 2; set
``HYDRA_FULL_ERROR=1`` to see the traceback. Any other exception keeps its traceback.
"""

from __future__ import annotations

import logging
import os
import sys

#: exit status of a command stopped by a ``UserError``
USER_ERROR_EXIT = 2

TRACEBACK_HINT = "(Set HYDRA_FULL_ERROR=1 to see the traceback.)"


class UserError(Exception):
    """Base of the errors whose message says what is wrong and how to fix it; the traceback adds
    nothing for the user."""


class ConfigError(UserError, ValueError):
    """A config value (or command-line argument) that is not valid; the message names the key."""


class MissingFileError(UserError, FileNotFoundError):
    """An input file (image, weights) that is not where the command was told to look."""


class BadFileError(UserError, ValueError):
    """An input file that cannot be read as what it should be; the message names the file."""


def full_error_requested() -> bool:
    """True when ``HYDRA_FULL_ERROR=1``: entry points then let a ``UserError`` raise normally."""
    return os.environ.get("HYDRA_FULL_ERROR", "") not in ("", "0")


def report_user_error(err: UserError, prog: str = "infocam_exp") -> int:
    """Print ``err``'s message (and how to get the traceback) to stderr; return the exit status."""
    print(f"{prog}: error: {type(err).__name__}: {err}\n{TRACEBACK_HINT}", file=sys.stderr)
    return USER_ERROR_EXIT


def log_user_error(err: UserError, logger: logging.Logger) -> int:
    """Log ``err``'s message (and how to get the traceback) as an error; return the exit status.
    For the argparse commands (``evaluate``, ``explain``), whose messages go through logging."""
    logger.error("%s\n%s", err, TRACEBACK_HINT)
    return USER_ERROR_EXIT
