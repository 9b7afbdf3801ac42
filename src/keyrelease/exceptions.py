"""Exceptions raised by keyrelease.

Expected failures of the key flow (a wrong code, a refused resend) are *values* returned by
the service layer (see ``keyrelease.service.results``), not exceptions. What is here is for
the unexpected, for misconfiguration and for mail delivery::

    KeyreleaseError
    ├── ConfigError          a setting is missing or invalid; raised at start-up
    ├── TemplateError        a mail template cannot be loaded or rendered (start-up)
    └── DeliveryError        a transport could not deliver a message
        ├── TransientDeliveryError   worth retrying later (timeout, 429, 5xx, server down)
        └── PermanentDeliveryError   retrying will not help (rejected recipient, bad API key)
"""

from __future__ import annotations


class KeyreleaseError(Exception):
    """Base class of every keyrelease exception."""


class ConfigError(KeyreleaseError):
    """A setting is missing or invalid. The message is one line naming the variable."""

    def __init__(self, variable: str, problem: str) -> None:
        self.variable = variable
        self.problem = problem
        super().__init__(f"{variable}: {problem}")


class TemplateError(KeyreleaseError):
    """A mail template is missing or broken."""


class DeliveryError(KeyreleaseError):
    """A transport failed to deliver a message.

    ``transient`` says whether a retry may succeed. ``provider_message`` is what the provider
    said (never the message body, never a credential).
    """

    transient: bool = True

    def __init__(self, provider_message: str, *, retry_after: float | None = None) -> None:
        self.provider_message = provider_message
        self.retry_after = retry_after
        super().__init__(provider_message)


class TransientDeliveryError(DeliveryError):
    transient = True


class PermanentDeliveryError(DeliveryError):
    transient = False
