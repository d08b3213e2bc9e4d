"""The bottom floor: settings, metrics maths, SQLite and cache-folder helpers."""
