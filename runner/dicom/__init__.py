"""DICOM: peers, the lean upper layer (ul) and the services on it, status categories, the
spool, and the pynetdicom AE factory for Storage Commitment and the simulated PACS."""
