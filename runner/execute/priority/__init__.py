"""The priority lane's triggers and its service in a run: requests from HL7 v2 (MLLP),
Modality Worklist polls and a CSV clinic list, each kept in the ledger when received, then
resolved to the patient's studies at the source and put at the head of their device's queue
(runner.execute.scheduler)."""
