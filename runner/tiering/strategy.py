"""Migration strategies compared by the forecast: order of studies, re-dating, hourly break."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from runner.profile.models import SiteProfile
from runner.profile.tiers import Location

OLDEST_FIRST = "oldest-first"
_TIER_RANK = {tier: rank for rank, tier in enumerate(Location)}


@dataclass(frozen=True, slots=True)
class Strategy:
    """One way of running the same migration.

    `order` is "oldest-first" (every study by date, whatever its tier) or "<tier>-first"
    (that tier's studies oldest first, then the other tiers in the order local, nearline,
    offline). `hourly_break` replaces the delay formula by a fixed break at the end of
    every hour (no retrieve starts then, no delay otherwise).
    """

    order: str
    redate: bool
    hourly_break: bool = False

    @property
    def name(self) -> str:
        """`<order>/<redate|no-redate>[/hourly-break]`."""
        name = f"{self.order}/{'redate' if self.redate else 'no-redate'}"
        return f"{name}/hourly-break" if self.hourly_break else name

    @property
    def first_tier(self) -> Location | None:
        """The tier taken first, None for oldest-first."""
        if self.order == OLDEST_FIRST:
            return None
        return Location(self.order.removesuffix("-first"))


STANDARD_STRATEGIES: tuple[Strategy, ...] = (
    Strategy(OLDEST_FIRST, redate=False),
    Strategy("local-first", redate=False),
    Strategy("local-first", redate=True),
    Strategy("local-first", redate=True, hourly_break=True),
)


def profile_strategy(profile: SiteProfile) -> Strategy:
    """The profile's own choice: its first tier first (oldest-first when `by_tier` is
    false), re-dating when `recent_days` > 0."""
    redate = profile.redate.recent_days > 0
    if not profile.tiering.by_tier:
        return Strategy(OLDEST_FIRST, redate)
    return Strategy(f"{profile.tiering.order[0].value}-first", redate)


def strategies_for(profile: SiteProfile) -> tuple[Strategy, ...]:
    """The standard strategies, plus the profile's own when it is not one of them."""
    own = profile_strategy(profile)
    return STANDARD_STRATEGIES if own in STANDARD_STRATEGIES else (*STANDARD_STRATEGIES, own)


def ordered_keys(by_date: Sequence[int], tiers: Sequence[Location],
                 strategy: Strategy) -> list[int]:
    """Study keys in the strategy's order, from the keys in date order (`by_date`) and each
    key's tier (`tiers`, indexed by key)."""
    first = strategy.first_tier
    if first is None:
        return list(by_date)
    rank = {tier: (tier is not first, _TIER_RANK[tier]) for tier in Location}
    return sorted(by_date, key=lambda key: rank[tiers[key]])
