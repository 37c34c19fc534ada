"""Failure alerts, sent by workers (failed, expired runs) and beat (lost runs) alike."""
