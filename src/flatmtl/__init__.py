"""flatmtl."""
