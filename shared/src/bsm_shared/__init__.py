"""bsm shared: the event contract and the small runtime every service uses the same way."""
