"""Typed errors of the memory service; each message says what to do."""

from emily.errors import EmilyError


class MemoryServiceError(EmilyError):
    """Base class of memory-service errors."""


class StoreUnavailable(MemoryServiceError):
    """Postgres cannot be reached; stores go to the outbox, recalls fail until it is back."""


class MigrationError(MemoryServiceError):
    """A schema migration failed or the migration files are inconsistent."""
