"""Typed exceptions shared by every layer. Each message tells the user what to do."""


class EmilyError(Exception):
    """Base class of every error the project raises on purpose."""


class ConfigError(EmilyError):
    """A configuration file or environment variable is missing or invalid."""


class PayloadError(EmilyError):
    """A bus message failed schema validation; the message names the field."""


class BusError(EmilyError):
    """A request over the bus failed: no replier, a timeout, or an error reply."""


class EmbedderError(EmilyError):
    """The MiniLM sentence-embedding model could not be loaded."""
