"""The audit log: who changed what, from what to what; written by staff actions, browsed in admin."""
