"""Fault injection for tests: the only switches a test sets to make a job misbehave on purpose.

Each is read from the job's environment when the moment comes, never at import; unset, nothing happens.
A test that needs a spot interruption or a job to kill sets one of these in the job's environment.
"""

from __future__ import annotations

import os

STOP_AFTER_EPOCH = "SMPIPE_STOP_AFTER_EPOCH"  # exit 3 after this epoch's checkpoint: a spot interruption
HANG_AFTER_EPOCH = "SMPIPE_HANG_AFTER_EPOCH"  # hold after this epoch's checkpoint, to be killed


def requested(switch: str, epoch: int) -> bool:
    """The test asked for ``switch`` at the end of ``epoch``."""
    return os.environ.get(switch) == str(epoch)
