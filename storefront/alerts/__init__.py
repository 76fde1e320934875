"""Slack alerts for the events that matter, sent from RQ jobs."""
