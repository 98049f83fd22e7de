-- Who wrote the ledger: runs grouped by profile file, its SHA-256 and the runner's version.
SELECT profile_path, profile_sha256, runner_version, count(*) AS runs,
       min(started_at) AS first_started, max(coalesce(ended_at, started_at)) AS last_ended,
       count(*) FILTER (WHERE ended_at IS NULL) AS unfinished_runs
FROM runs
GROUP BY ALL
ORDER BY first_started
