"""The service layer: every use-case of keyrelease, the only code that changes key state."""
