"""bsm metrics service."""
