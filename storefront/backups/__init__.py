"""Logical backups of the database and the drill that restores them."""
