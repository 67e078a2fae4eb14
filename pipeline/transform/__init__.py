"""Batch transform: landed JSON lines → bronze → silver (SPEC §3) → gold (SPEC §4), on Delta."""
