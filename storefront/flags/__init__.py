"""Feature flags, switches and samples (django-waffle's model), read from a per-process cache."""
