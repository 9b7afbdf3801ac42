"""The built-in mail transports of keyrelease, each a pluggy plugin in its own module.

They are declared in the ``keyrelease.transports`` entry-point group of keyrelease's own
``pyproject.toml``: the same path a third-party transport takes.
"""
