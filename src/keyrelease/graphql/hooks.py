"""Strawberry's extension hooks, entered exactly as Strawberry enters them, but with each hook's
context-manager factory made once per extension class instead of once per request.

For every request and every stage (operation, parsing, validation, execution), Strawberry looks
at each extension's hook, and for each one defined wraps it anew:
``contextlib.contextmanager(types.MethodType(hook, extension))``, which copies the function's
metadata (``functools.update_wrapper``) each time. Which hooks a class defines, and whether each
is a generator or an async generator, never changes, so here that is decided once per class and
the decorated function kept; a request only binds it to its extension (``functools.partial``).
The context manager it makes is the one Strawberry's makes (``contextmanager(f)(extension)``
calls ``f(extension)`` just as ``contextmanager(MethodType(f, extension))()`` does), entered and
left in the same order. A hook that is neither kind (a plain function) takes Strawberry's own
path. :class:`keyrelease.graphql.errors.Schema` runs its extensions with :class:`ExtensionsRunner`.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable
from typing import Any

from strawberry.extensions import SchemaExtension
from strawberry.extensions.context import (
    ExecutingContextManager,
    OperationContextManager,
    ParsingContextManager,
    ValidationContextManager,
    WrappedHook,
)
from strawberry.extensions.runner import SchemaExtensionsRunner

Factory = tuple[Callable[..., Any] | None, bool] | None
#: :func:`_factory`'s answer for a hook Strawberry itself must wrap.
_STRAWBERRYS: Factory = (None, False)
_factories: dict[tuple[type, str], Factory] = {}


def _factory(extension_class: type, hook_name: str) -> Factory:
    """The hook's context-manager factory and whether it is async; None when the class does
    not define the hook; :data:`_STRAWBERRYS` for a hook that is not a generator. Made once
    per class and hook."""
    key = (extension_class, hook_name)
    if key not in _factories:
        _factories[key] = _make_factory(getattr(extension_class, hook_name), getattr(SchemaExtension, hook_name))
    return _factories[key]


def _make_factory(hook: Any, default: Any) -> Factory:
    if hook is default:
        return None
    if inspect.isgeneratorfunction(hook):
        return contextlib.contextmanager(hook), False
    if inspect.isasyncgenfunction(hook):
        return contextlib.asynccontextmanager(hook), True
    return _STRAWBERRYS


class _Hooks:
    __slots__ = ()
    HOOK_NAME: str

    def get_hook(self, extension: SchemaExtension) -> WrappedHook | None:
        made = _factory(type(extension), self.HOOK_NAME)
        if made is None:
            return None
        factory, is_async = made
        if factory is None:
            return super().get_hook(extension)  # type: ignore[misc]
        return WrappedHook(extension=extension, hook=functools.partial(factory, extension), is_async=is_async)


class _Operation(_Hooks, OperationContextManager):
    __slots__ = ()


class _Parsing(_Hooks, ParsingContextManager):
    __slots__ = ()


class _Validation(_Hooks, ValidationContextManager):
    __slots__ = ()


class _Executing(_Hooks, ExecutingContextManager):
    __slots__ = ()


class ExtensionsRunner(SchemaExtensionsRunner):
    """Strawberry's runner, its four stages' hooks wrapped as the module docstring says."""

    def operation(self) -> OperationContextManager:
        return _Operation(self.extensions)

    def parsing(self) -> ParsingContextManager:
        return _Parsing(self.extensions)

    def validation(self) -> ValidationContextManager:
        return _Validation(self.extensions)

    def executing(self) -> ExecutingContextManager:
        return _Executing(self.extensions)
