"""The ``emily`` command line: the top layer, which may import every service."""
