"""Helpers shared by the test tiers (unit, integration, e2e, chaos, compose)."""
