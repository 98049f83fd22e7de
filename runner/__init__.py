"""pacsmig: a declarative, config-driven PACS data migration runner."""

__version__ = "0.1.0"
