"""Typed errors of the memory service; each message says what to do."""

from emily.errors import EmilyError


class MemoryError_(EmilyError):
    """Base class of memory-service errors."""


class StoreUnavailable(MemoryError_):
    """Postgres cannot be reached; stores go to the outbox, recalls fail until it is back."""


class MigrationError(MemoryError_):
    """A schema migration failed or the migration files are inconsistent."""


class EmbedderError(MemoryError_):
    """The MiniLM model could not be loaded."""
