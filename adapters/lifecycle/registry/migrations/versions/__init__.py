"""Revision scripts of the registry schema (one file per change, never edited once shipped)."""
