"""The ticket core: model, prefill rules and the service; no I/O library imported here."""
