"""bsm alias service."""
