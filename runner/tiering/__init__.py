"""tiering."""
