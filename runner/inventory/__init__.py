"""The inventory: what the source holds, from C-FIND or from a CSV file."""
