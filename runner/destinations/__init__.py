"""Destinations other than a DICOM peer: DICOMweb (STOW-RS to store, QIDO-RS to verify)."""
