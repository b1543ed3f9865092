"""The one exception type the CLI turns into a one-line message and a non-zero exit code."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or a refused action: the message names the file or folder and the fix."""
