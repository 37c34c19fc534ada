"""Schema, migration and trigger tests against real databases."""
