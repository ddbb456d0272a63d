"""One exception hierarchy for the whole application.

The CLI prints ``str(error)`` on one line and exits non-zero; the GUI shows it in one dialog.
Messages name the file, field or object at fault.
"""

from __future__ import annotations


class AnnotatorError(Exception):
    """Base of every error the application raises on purpose."""


class InputError(AnnotatorError):
    """Bad input from a user or a file: the message names the file or field."""


class DicomRejected(InputError):
    """A file that cannot be imported as an image; ``reason`` is one line."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class NotFound(AnnotatorError):
    """A rater, image, model or other object named by the caller does not exist."""


class PermissionDenied(AnnotatorError):
    """The rater's role does not allow the action (for example an annotator reading others' labels)."""


class ConflictError(AnnotatorError):
    """Somebody else changed the object first; ``current`` holds what they stored."""

    def __init__(self, message: str, current: object | None = None) -> None:
        super().__init__(message)
        self.current = current


class DatabaseError(AnnotatorError):
    """The database cannot be opened or used."""


class PasswordRequired(DatabaseError):
    """The database server wants a password the URL does not give (a team workstation signing in)."""


class DatabaseUnavailable(DatabaseError):
    """The database server could not be reached (restarting, connection lost) within the reconnect time."""


class NotCommitted(DatabaseUnavailable):
    """An action the database did not confirm; the user is told, and the action can be repeated.

    ``certain`` is True when it was definitely not stored, False when the connection broke while it was
    committing (it may be stored). ``key`` is the action's idempotency key, when it has one: repeating the
    action with that key stores it at most once either way.
    """

    def __init__(self, message: str, *, certain: bool, key: str | None = None) -> None:
        super().__init__(message)
        self.certain = certain
        self.key = key


class DatabaseTooNew(DatabaseError):
    """The database was written by a newer version of the application."""


class ModelIntegrityError(AnnotatorError):
    """A model's weights do not match the hash in its card, or the card is malformed."""


class Cancelled(AnnotatorError):
    """A long operation stopped because the user asked it to."""


class FoldFailed(AnnotatorError):
    """One fold of a parallel cross-validation failed in its child process; nothing was published."""
