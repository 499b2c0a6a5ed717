"""User-facing errors.

A `FacecastError` is a mistake the user can fix (bad file, missing consent, wrong option). The CLI prints
its message as one line on stderr and exits non-zero, never a traceback. Anything else is a bug and is
allowed to show its traceback.
"""

from __future__ import annotations


class FacecastError(Exception):
    """An error caused by input the user can fix; `str(err)` is the one line shown to them."""

    exit_code = 2


class ConsentError(FacecastError):
    """No valid consent record for the identity a stage is about to train on or render."""

    exit_code = 3


class ContentRefused(FacecastError):
    """A frame was refused by the explicit-content gate."""

    exit_code = 4
