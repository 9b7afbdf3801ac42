"""keyrelease: verified key release for a data platform's API keys."""

__version__ = "0.1.0"
