"""bsm policy service."""
