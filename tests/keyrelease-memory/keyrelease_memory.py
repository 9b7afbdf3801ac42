"""Registers the ``memory`` mail transport (:mod:`keyrelease.testing.mail`) under its
``keyrelease.transports`` entry point.

Only the registration lives here, in a distribution of its own (``keyrelease-memory``, this
folder) that ``make install`` puts in the development virtualenv: the tests load the transport
through the same entry-point path as any third-party transport, and a production install, which
lacks this distribution, does not know the name. keyrelease refuses it when
``KEYRELEASE_ENV=production`` all the same.
"""

from __future__ import annotations

from keyrelease.mail.hookspecs import hookimpl
from keyrelease.testing.mail import MemoryTransport


@hookimpl
def register_transports(register):
    register(MemoryTransport)
