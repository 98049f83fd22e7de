"""Cross-field checks of a site profile: rules that span sections.

They run on the plain data of the document, so that they are reported together with the
field errors, even when other parts of the profile do not validate.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

Loc = tuple[str | int, ...]
CrossProblem = tuple[Loc, str]


def cross_field_problems(data: Any) -> list[CrossProblem]:
    """Every cross-field problem in a profile document (plain dicts and lists)."""
    if not isinstance(data, dict):
        return []
    return [*_device_problems(data), *_throttle_name_problems(data), *_endpoint_clashes(data),
            *_order_problems(data)]


def concurrency_order(low: Any, high: Any) -> str | None:
    """The problem when a throttle's minimum concurrency is above its maximum."""
    if isinstance(low, int) and isinstance(high, int) and low > high:
        return (f"min_concurrent_retrieves ({low}) is above "
                f"max_concurrent_retrieves ({high})")
    return None


def date_order(start: Any, end: Any, timezone: Any = None) -> str | None:
    """The problem when an inventory window starts after it ends; `end` may be "today",
    resolved in the site's `timezone` (UTC when it is not a known zone)."""
    if end == "today":
        today = site_today(timezone)
        if isinstance(start, date) and start > today:
            return f"inventory 'from' ({start}) is after 'to' (today, {today})"
        return None
    if isinstance(start, date) and isinstance(end, date) and start > end:
        return f"inventory 'from' ({start}) is after 'to' ({end})"
    return None


def site_today(timezone: Any) -> date:
    """Today's date in `timezone` (a zone name), UTC when it is not a known zone."""
    try:
        zone = ZoneInfo(timezone) if isinstance(timezone, str) and timezone else ZoneInfo("UTC")
    except (KeyError, ValueError, OSError):  # an unknown zone is reported by its field
        zone = ZoneInfo("UTC")
    return datetime.now(zone).date()


def _order_problems(data: dict[str, Any]) -> Iterator[CrossProblem]:
    throttles = data.get("throttles")
    for name, throttle in (throttles.items() if isinstance(throttles, dict) else ()):
        if isinstance(throttle, dict):
            message = concurrency_order(throttle.get("min_concurrent_retrieves", 1),
                                        throttle.get("max_concurrent_retrieves"))
            if message:
                yield ("throttles", name, "min_concurrent_retrieves"), message
    source = data.get("source")
    query = source.get("inventory") if isinstance(source, dict) else None
    if isinstance(query, dict):
        site = data.get("site")
        zone = site.get("timezone") if isinstance(site, dict) else None
        message = date_order(query.get("from"), query.get("to", "today"), zone)
        if message:
            yield ("source", "inventory", "from"), message


def _devices(data: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    source = data.get("source")
    devices = source.get("devices") if isinstance(source, dict) else None
    if not isinstance(devices, list):
        return []
    return [(i, d) for i, d in enumerate(devices) if isinstance(d, dict)]


def _device_problems(data: dict[str, Any]) -> Iterator[CrossProblem]:
    seen: dict[tuple[str, Any], int] = {}
    for i, device in _devices(data):
        for key in ("id", "ae_title"):
            value = device.get(key)
            if not isinstance(value, str):
                continue
            first = seen.setdefault((key, value), i)
            if first != i:
                yield (("source", "devices", i, key),
                       f"duplicate device {key} '{value}' (also device {first + 1})")


def _throttle_name_problems(data: dict[str, Any]) -> Iterator[CrossProblem]:
    throttles = data.get("throttles")
    if not isinstance(throttles, dict):
        return
    known = ", ".join(sorted(str(k) for k in throttles)) or "none"
    schedule = data.get("schedule")
    entries = schedule if isinstance(schedule, list) else []
    for i, entry in enumerate(entries):
        name = entry.get("throttle") if isinstance(entry, dict) else None
        if isinstance(name, str) and name not in throttles:
            yield (("schedule", i, "throttle"),
                   f"schedule names throttle '{name}', which is not defined (defined: {known})")
    for i, device in _devices(data):
        name = device.get("throttle")
        if isinstance(name, str) and name not in throttles:
            yield (("source", "devices", i, "throttle"),
                   f"device pinned to throttle '{name}', which is not defined (defined: {known})")


def _endpoint(section: Any) -> tuple[str, Any] | None:
    if not isinstance(section, dict):
        return None
    host, port = section.get("host"), section.get("port")
    return (str(host), port) if isinstance(port, int) else None


def _endpoint_clashes(data: dict[str, Any]) -> Iterator[CrossProblem]:
    """Two devices at one address, or the listener's own AE title/port reused by a peer."""
    places: dict[tuple[str, Any], Loc] = {}
    listener = data.get("listener")
    candidates: list[tuple[Loc, Any]] = [(("destination",), data.get("destination"))]
    candidates += [(("source", "devices", i), d) for i, d in _devices(data)]
    for loc, section in candidates:
        where = _endpoint(section)
        if where is None:
            continue
        if where in places:
            yield ((*loc, "port"), f"{where[0]}:{where[1]} is already used by "
                                   f"{_where(places[where])}")
        places.setdefault(where, loc)
        yield from _listener_clash(listener, loc, section)


def _listener_clash(listener: Any, loc: Loc, peer: Any) -> Iterator[CrossProblem]:
    if not isinstance(listener, dict) or not isinstance(peer, dict):
        return
    if listener.get("ae_title") is not None and peer.get("ae_title") == listener.get("ae_title"):
        yield ((*loc, "ae_title"),
               f"AE title '{peer['ae_title']}' is the listener's own AE title")
    same_port = peer.get("port") == listener.get("port")
    if same_port and _is_loopback_or_any(listener.get("host")) and _is_loopback(peer.get("host")):
        yield ((*loc, "port"), f"port {peer['port']} on this machine is the listener's own port")


def _is_loopback(host: Any) -> bool:
    return isinstance(host, str) and (host.startswith("127.") or host in ("localhost", "::1"))


def _is_loopback_or_any(host: Any) -> bool:
    return host in (None, "0.0.0.0", "::") or _is_loopback(host)


def _where(loc: Loc) -> str:
    return "the destination" if loc == ("destination",) else f"source device {int(loc[2]) + 1}"
