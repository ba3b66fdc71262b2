"""bsm delivery service."""
