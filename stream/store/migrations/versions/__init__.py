"""Revision scripts of the stream store schema (one file per change, never edited once shipped)."""
