"""Inventory: the one home of every write to a variant's stock (on_hand, reserved) and of its ledger."""
