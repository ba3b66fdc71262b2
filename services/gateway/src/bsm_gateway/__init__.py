"""bsm gateway."""
