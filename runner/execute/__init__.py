"""The run as stages with one direction of flow, wired in one place (`wiring`): `scheduler`
(and `retrieving`) -> `intake` -> `sending` -> `settlement`; their shared working state in
`state`, and the commands that drive them (`run`, `sync`, `preflight`, `status`, ...)."""
