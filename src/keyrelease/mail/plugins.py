"""Loading transports through pluggy, from the ``keyrelease.transports`` entry-point group.

Built-in transports (``plugins/`` in the repository) are declared in that group by our own
``pyproject.toml``, so they load through exactly the path a third-party package uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata

import pluggy

from keyrelease.exceptions import ConfigError
from keyrelease.mail import hookspecs
from keyrelease.mail.transport import Transport

ENTRY_POINT_GROUP = "keyrelease.transports"


@dataclass(frozen=True)
class PluginInfo:
    name: str
    package: str
    version: str
    transports: tuple[str, ...]


class TransportRegistry:
    """The plugins that loaded and the transports they registered, by name."""

    def __init__(self, allowlist: Iterable[str] | None = None) -> None:
        self.manager = pluggy.PluginManager(hookspecs.PROJECT)
        self.manager.add_hookspecs(hookspecs)
        allowed = set(allowlist) if allowlist is not None else None
        self._dists: dict[str, tuple[str, str]] = {}
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if allowed is not None and ep.name not in allowed:
                continue
            if self.manager.get_plugin(ep.name) is not None:
                continue
            try:
                plugin = ep.load()
            except Exception as err:
                raise ConfigError(ENTRY_POINT_GROUP, f"plugin {ep.name!r} failed to import: {err}") from err
            self.manager.register(plugin, name=ep.name)
            dist = ep.dist
            self._dists[ep.name] = (dist.name, dist.version) if dist else ("?", "?")
        if allowed is not None and (missing := allowed - set(self._dists)):
            raise ConfigError("KEYRELEASE_PLUGINS", f"no installed plugin named {', '.join(sorted(missing))}")
        try:
            self.manager.check_pending()
        except pluggy.PluginValidationError as err:
            raise ConfigError(ENTRY_POINT_GROUP, str(err)) from err
        self.transports: dict[str, type[Transport]] = {}
        self._owner: dict[str, str] = {}
        for impl in self.manager.hook.register_transports.get_hookimpls():
            def register(cls: type[Transport], _plugin: str = impl.plugin_name) -> None:
                name = getattr(cls, "name", None)
                if not isinstance(name, str) or not name:
                    raise ConfigError(ENTRY_POINT_GROUP, f"plugin {_plugin!r} registered a transport without a name")
                if name in self.transports:
                    raise ConfigError(
                        ENTRY_POINT_GROUP,
                        f"transport {name!r} registered by both {self._owner[name]!r} and {_plugin!r}",
                    )
                self.transports[name] = cls
                self._owner[name] = _plugin

            try:
                impl.function(register=register)
            except ConfigError:
                raise
            except Exception as err:
                raise ConfigError(ENTRY_POINT_GROUP, f"plugin {impl.plugin_name!r} failed: {err}") from err

    def plugins(self) -> list[PluginInfo]:
        return [
            PluginInfo(
                name=name,
                package=package,
                version=version,
                transports=tuple(sorted(t for t, owner in self._owner.items() if owner == name)),
            )
            for name, (package, version) in sorted(self._dists.items())
        ]

    def create(self, name: str, env: Mapping[str, str]) -> Transport:
        """Build the transport called ``name``, validating its settings now."""
        cls = self.transports.get(name)
        if cls is None:
            known = ", ".join(sorted(self.transports)) or "none"
            raise ConfigError("KEYRELEASE_MAIL_TRANSPORT", f"unknown transport {name!r} (installed: {known})")
        return cls.from_env(env)
