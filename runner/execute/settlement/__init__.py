"""Settlement: whether each study arrived, by every verification mode (image-level C-FIND,
counts, storage commitment, morphed values, a sample read back, a re-check of everything),
the verdict, and the repair of what is missing."""
