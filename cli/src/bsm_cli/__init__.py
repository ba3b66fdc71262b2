"""bsm command line."""
