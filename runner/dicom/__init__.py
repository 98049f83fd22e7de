"""Everything pynetdicom: peers, the AE factory, status categories, C-ECHO and C-FIND."""
