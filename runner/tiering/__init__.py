"""The storage-tier model (local store with LRU push-off, nearline recall) and the forecast."""
