"""Calibration from a pilot run: the tier model's speeds as the ledger measured them.

After `pacsmig run --limit N`, the ledger holds what the source really did. Each successful
migrate retrieve gives the time to its first instance (the source's latency; for a study not
on the local store, its recall) and the MB/s of its instances once they flowed. From them:
`device_mb_per_s` is the median flow of all retrieves, `retrieve_latency_seconds` the median
latency of the local ones that were hits, `nearline_mb_per_s` the median of each recalled
study's MB over its recall time (its latency less that of a hit; a recall is told from a
hit by its latency, not its planned tier: `recall_threshold`), and `device_total_mb_per_s`
what a device delivered with its retrieves together (`device_total`). A figure needs
MIN_SAMPLES retrieves to replace the assumption; the forecast
says which figures are measured (and from how many retrieves) and which assumed.

A census counts instances, not bytes: the plan sizes a study at 0.5 MB an instance, where a
CT slice holds 0.5 MB, a CR 10-30 MB and a mammogram 50 MB or more. The pilot's retrieves
measure the MB an instance really holds, per modality (`StudySizes`), and the forecast sizes
each study by it: the store's turnover, recalls and durations follow the real bytes.

Besides the speeds, a pilot's `PilotMeasures` (runner.ledger.calibration) give device trouble
(stalls, lock-ups, refusals) against the retrieves in flight, and the forward and verify
rates the destination reached: shown as measured next to the model's assumptions (the model
itself takes a device's trouble from its lock-up backlog, and the destination as keeping up).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from statistics import median
from typing import Protocol

from runner.inventory.model import Study
from runner.tiering.params import TierParameters

MIN_SAMPLES = 3
RECALL_STEP = 3.0  # a recall's latency is this many times the slowest hit's, or more
_QUICK = 0.001  # seconds: latencies below this are as quick as it (no step from zero)


class PilotRetrieve(Protocol):
    """One successful retrieve of the ledger, as calibration reads it
    (runner.ledger.queries.RetrieveTiming): a migrate one, or a re-date (`purpose`)."""

    @property
    def purpose(self) -> str: ...
    @property
    def tier(self) -> str: ...
    @property
    def megabytes(self) -> float: ...
    @property
    def latency_seconds(self) -> float:
        """From the C-MOVE to its first instance."""
    @property
    def flow_seconds(self) -> float:
        """From the first instance to the last."""
    @property
    def device(self) -> str: ...
    @property
    def first_at(self) -> float | None:
        """When its first instance came, in seconds (migrate retrieves)."""
    @property
    def modality(self) -> str:
        """The study's modality, as the census found it."""
    @property
    def instances(self) -> int:
        """Instances received (migrate retrieves; a re-date's: as planned, 0 unknown)."""
    @property
    def in_flight(self) -> int:
        """A re-date's: the retrieves on its device at its start, itself included."""


class PilotMeasures(Protocol):
    """The ledger's other measures of a pilot run (runner.ledger.calibration.PilotRates)."""

    @property
    def trouble_by_concurrency(self) -> Mapping[int, tuple[int, int]]:
        """In flight on the device at a retrieve's start -> (retrieves, device trouble)."""
    @property
    def forward_mb_per_s(self) -> float | None: ...
    @property
    def forwards(self) -> int: ...
    @property
    def verified_per_hour(self) -> float | None: ...
    @property
    def verifications(self) -> int: ...


@dataclass(frozen=True, slots=True)
class StudySizes:
    """A study's MB from the MB per instance the pilot measured: its modality's (on
    MIN_SAMPLES retrieves), else all modalities' together (key ""), else as planned; a size
    the source gave stands."""

    per_instance: Mapping[str, float] = field(default_factory=dict)
    retrieves: int = 0  # how many retrieves measured them

    def __call__(self, study: Study) -> float:
        if study.size_mb is not None:
            return study.size_mb
        return self.of(study.modality, study.instances or 1, study.estimated_mb)

    def of(self, modality: str, instances: int, planned_mb: float) -> float:
        """The MB of `instances` of `modality`; `planned_mb` when nothing was measured."""
        each = self.per_instance.get(modality, self.per_instance.get(""))
        return planned_mb if each is None or instances <= 0 else instances * each

    def describe(self) -> str:
        """The measured MB per instance, for the forecast's assumptions."""
        parts = [f"{m or 'any other'} {mb:.3g}" for m, mb in
                 sorted(self.per_instance.items(), key=lambda item: (not item[0], item[0]))]
        return f"MB per instance {', '.join(parts)} (from {self.retrieves:,} retrieves)"


def study_sizes(retrieves: Sequence[PilotRetrieve]) -> StudySizes:
    """The MB per instance the migrate retrieves brought: each modality's median over its
    retrieves, and all retrieves' bytes over their instances for any other modality."""
    timed = [r for r in retrieves
             if r.purpose != "redate" and r.instances > 0 and r.megabytes > 0]
    if len(timed) < MIN_SAMPLES:
        return StudySizes()
    by_modality: dict[str, list[float]] = {}
    for r in timed:
        by_modality.setdefault(r.modality, []).append(r.megabytes / r.instances)
    per = {m: median(v) for m, v in by_modality.items() if m and len(v) >= MIN_SAMPLES}
    per[""] = sum(r.megabytes for r in timed) / sum(r.instances for r in timed)
    return StudySizes(per, len(timed))


@dataclass(frozen=True, slots=True)
class Calibration:
    """The parameters with what was measured, and a line saying which figures are which;
    `sizes` gives each study's MB (as planned when the pilot measured none)."""

    parameters: TierParameters
    measured: dict[str, int]  # parameter -> retrieves it was measured from
    rates: PilotMeasures | None = None
    sizes: StudySizes = field(default_factory=StudySizes)

    def rate_lines(self) -> list[str]:
        """Device trouble against concurrency, forward and verify rates: measured or not."""
        rates = self.rates
        trouble = dict(rates.trouble_by_concurrency) if rates else {}
        lines = [("device trouble (stall, lock-up, refusal) by retrieves in flight on the "
                  "device, measured: " + ", ".join(
                      f"{n}: {bad:,} of {total:,}" for n, (total, bad) in sorted(trouble.items())))
                 if sum(total for total, _ in trouble.values()) >= MIN_SAMPLES else
                 "device trouble against retrieves in flight: assumed (the lock-up backlog)"]
        forward = rates.forward_mb_per_s if rates and rates.forwards >= MIN_SAMPLES else None
        verify = rates.verified_per_hour if rates and rates.verifications >= MIN_SAMPLES \
            else None
        parts = [f"forward {forward:.3g} MB/s (measured, {rates.forwards:,} instances)"
                 if forward is not None and rates else "forward rate not measured",
                 f"verify {verify:,.0f} studies/h (measured, {rates.verifications:,} studies)"
                 if verify is not None and rates else "verify rate not measured"]
        return [*lines, f"{', '.join(parts)}: the model assumes the destination keeps up"]

    def describe(self) -> str:
        """Measured and assumed figures, for the forecast's assumptions."""
        if not self.measured and not self.sizes.retrieves:
            return "every figure assumed (no pilot run in the ledger: `pacsmig run --limit N`)"
        measured = [f"{name} {getattr(self.parameters, name):.3g} (from {n:,} retrieves)"
                    for name, n in sorted(self.measured.items())]
        if self.sizes.retrieves:
            measured.append(self.sizes.describe())
        sizes = "" if self.sizes.retrieves else "study sizes as planned (0.5 MB an instance), "
        return f"measured by the pilot run: {', '.join(measured)}; {sizes}the rest assumed"


def calibrate(params: TierParameters, retrieves: Sequence[PilotRetrieve],
              rates: PilotMeasures | None = None) -> Calibration:
    """`params` with the speeds the pilot's retrieves measured (each on enough samples), and
    the pilot's other measures (`rates`) to show. A re-date's latency is its whole time
    less the flow a local study of its size takes (its instances are not kept, so not
    timed one by one): its study's MB as the pilot measured them (`study_sizes`), at the
    rate the model gives it, the device's shared with the retrieves in flight with it."""
    sizes = study_sizes(retrieves)
    redates = [r for r in retrieves if r.purpose == "redate"]
    retrieves = [r for r in retrieves if r.purpose != "redate"]
    flows = [r.megabytes / r.flow_seconds for r in retrieves
             if r.flow_seconds > 0 and r.megabytes > 0]
    measured: dict[str, int] = {}
    device, nearline = params.device_mb_per_s, params.nearline_mb_per_s
    if len(flows) >= MIN_SAMPLES:
        device = median(flows)
        measured["device_mb_per_s"] = len(flows)
    threshold = recall_threshold(retrieves)
    hits = [r.latency_seconds for r in retrieves
            if r.tier == "local" and r.latency_seconds <= threshold]
    base = median(hits) if hits else 0.0
    latency = params.retrieve_latency_seconds
    recalls = [r.megabytes / (r.latency_seconds - base) for r in retrieves
               if r.latency_seconds > threshold and r.latency_seconds > base
               and r.megabytes > 0]
    # a recall's time is measured past a hit's latency: the model adds the two, so the hit's
    # latency goes with measured recalls even when few studies were found local
    if len(hits) >= MIN_SAMPLES or (hits and len(recalls) >= MIN_SAMPLES):
        latency = base
        measured["retrieve_latency_seconds"] = len(hits)
    if len(recalls) >= MIN_SAMPLES:
        nearline = median(recalls)
        measured["nearline_mb_per_s"] = len(recalls)
    total, samples = device_total(retrieves, device)
    if samples:
        measured["device_total_mb_per_s"] = samples
    redate = params.redate_latency_seconds
    if len(redates) >= MIN_SAMPLES:
        shared = total or params.device_total_mb_per_s
        redate = median(max(0.0, r.latency_seconds - sizes.of(r.modality, r.instances,
                                                              r.megabytes)
                            / min(device, shared / max(1, r.in_flight)))
                        for r in redates)
        measured["redate_latency_seconds"] = len(redates)
    return Calibration(replace(params, device_mb_per_s=device, nearline_mb_per_s=nearline,
                               retrieve_latency_seconds=latency,
                               redate_latency_seconds=redate,
                               device_total_mb_per_s=total or params.device_total_mb_per_s),
                       measured, rates, sizes)


def recall_threshold(retrieves: Sequence[PilotRetrieve]) -> float:
    """The latency past which a retrieve was a recall, whatever its planned tier.

    A study planned local may have been pushed off the store before its turn (recalled, as
    slow as a nearline one), and a nearline study read by a clinician just before may be
    found local (as quick as a hit). So, from the quickest local retrieve up, the latencies
    are taken in order, and the hits end at the first step to a latency RECALL_STEP times
    the one before: a recall waits for storage that is far slower than a look-up, while
    hits spread evenly (a busy device, a slow association); with no such step, none was a
    recall. Without nearline retrieves, no local one was a recall."""
    local = sorted(r.latency_seconds for r in retrieves if r.tier == "local")
    if not local:
        return 0.0
    if all(r.tier == "local" for r in retrieves):
        return local[-1]
    latencies = sorted(r.latency_seconds for r in retrieves if r.latency_seconds >= local[0])
    for below, above in pairwise(latencies):
        if above > RECALL_STEP * max(below, _QUICK):
            return below
    return latencies[-1]


def device_total(retrieves: Sequence[PilotRetrieve], per_retrieve: float) -> tuple[float, int]:
    """What a device delivers with its retrieves together (MB/s; the median over devices)
    and from how many retrieves; (0, 0) without MIN_SAMPLES timed retrieves of a device.

    A device's rate is its retrieves' MB over the time any of them was flowing (the union of
    their flows): what it gave while they overlapped, or one retrieve's flow when they did
    not, so never less than the median flow of one (`per_retrieve`)."""
    flows: dict[str, list[tuple[float, float, float]]] = {}
    for r in retrieves:
        if r.first_at is not None and r.flow_seconds > 0 and r.megabytes > 0:
            flows.setdefault(r.device, []).append(
                (r.first_at, r.first_at + r.flow_seconds, r.megabytes))
    rates = [max(per_retrieve, sum(mb for _, _, mb in spans) / _union(spans))
             for spans in flows.values() if len(spans) >= MIN_SAMPLES]
    used = sum(len(spans) for spans in flows.values() if len(spans) >= MIN_SAMPLES)
    return (median(rates), used) if rates else (0.0, 0)


def _union(spans: list[tuple[float, float, float]]) -> float:
    """Seconds covered by the (start, end, _) spans."""
    covered, reach = 0.0, float("-inf")
    for start, end, _ in sorted(spans):
        if end > reach:
            covered += end - max(start, reach)
            reach = end
    return covered


def recall_allowance(recall_timeout: float, retrieves: Sequence[PilotRetrieve]) -> float:
    """How long a retrieve of a study not on the local store may wait before its data moves:
    `recall_timeout`, or twice the longest recall the ledger measured when that is longer
    (its latency to the first instance: a recall the source made before)."""
    recalls = [r.latency_seconds for r in retrieves
               if r.tier != "local" and r.purpose != "redate"]
    return max(recall_timeout, 2 * max(recalls, default=0.0))
