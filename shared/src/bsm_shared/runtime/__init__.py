"""The small runtime pieces every service uses the same way."""
