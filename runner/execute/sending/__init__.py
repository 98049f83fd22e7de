"""Sending: spooled instances morphed and forwarded to the destination by a pool of workers
behind the `Sender` seam (`seam`), the DIMSE C-STORE senders (`dimse`, `pool`), and the run's
bookkeeping of each forward (`stage`)."""
