"""The bus: Zenoh wiring and the versioned message contracts every service shares.

This package sits at the bottom of the import layers: it imports nothing from the
services, so services share contracts without importing each other.
"""

from emily.bus.keys import Keys
from emily.bus.messages import ErrorReply, Message, decode, encode
from emily.bus.session import BusConfig, open_session

__all__ = ["BusConfig", "ErrorReply", "Keys", "Message", "decode", "encode", "open_session"]
