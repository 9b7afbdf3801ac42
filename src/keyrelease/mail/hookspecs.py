"""The hooks a keyrelease plugin may implement. This module is the plugin author's reference.

A plugin is a module or object exposed through the ``keyrelease.transports`` entry-point
group and decorated with :data:`hookimpl`::

    from keyrelease.mail.hookspecs import hookimpl

    @hookimpl
    def register_transports(register):
        register(MyTransport)

pluggy hooks are synchronous: hooks only *register* things; the transports they register send
asynchronously (see :class:`keyrelease.mail.transport.Transport`).

``docs/plugins.md`` is the guide built on this module: a hook added here must get a section
there (``tests/test_plugin_docs.py`` fails until it does).
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

from keyrelease.mail.transport import Transport

PROJECT = "keyrelease"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_transports(register: Callable[[type[Transport]], None]) -> None:
    """Register mail transports.

    :param register: call it once per transport class. The class's ``name`` is what
        ``KEYRELEASE_MAIL_TRANSPORT`` selects; two plugins registering one name is a start-up
        error naming both.

    Return nothing. Raising here aborts start-up with the plugin's name in the message, so do
    no I/O: settings are read later, by ``Transport.from_env``, and only for the transport
    that was selected.
    """
