"""Message schemas of each service, one module per service (``memory``, ``inference``,
``cognition``). They live in the bus layer so a service can call another one through
the contract alone, without importing it."""
