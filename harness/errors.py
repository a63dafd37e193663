"""The one exception type users see: a one-line, actionable message."""


class SinkbenchError(Exception):
    """Bad input or a missing prerequisite. The message names the argument and the fix."""
