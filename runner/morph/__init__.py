"""morph."""
