"""User-facing errors: the CLI prints these as one line (``error: ...``) and exits with status 2."""


class SLDError(Exception):
    """Base class of errors caused by user input or environment, not by a bug."""


class SpecError(SLDError, ValueError):
    """A run specification is invalid. The message names the key and the reason."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"{key}: {reason}" if key else reason)
