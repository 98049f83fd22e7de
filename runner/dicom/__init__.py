"""DICOM: peers, the lean upper layer (ul) and the services on it (C-ECHO, C-FIND, C-MOVE,
C-STORE, Storage Commitment, the listener), status codes and categories, the spool. No
pynetdicom: that is the simulated peers' (runner.sim)."""
