"""Batch transform: landed JSON lines → bronze → silver → gold, on Delta (data contract §3, §4)."""
