"""The top floor: entry points (the `lsat` command, `lsat up`)."""
