"""Small HTML builders that escape every piece of text they are given."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape


@dataclass(frozen=True, slots=True)
class Col:
    """A table column: its title, its kind ('text', 'num', 'uid') and an optional width."""

    title: str
    kind: str = "text"
    width: str | None = None


def text(value: object) -> str:
    """Any value as escaped HTML text."""
    return escape(str(value), quote=True)


def tag(name: str, content: str, cls: str = "") -> str:
    """<name class=cls>content</name>; `content` must already be HTML."""
    attr = f' class="{text(cls)}"' if cls else ""
    return f"<{name}{attr}>{content}</{name}>"


def para(value: str, cls: str = "") -> str:
    """A paragraph of plain (escaped) text."""
    return tag("p", text(value), cls)


def table(cols: Sequence[Col], rows: Iterable[Sequence[object]], cls: str = "",
          total: Sequence[object] | None = None) -> str:
    """A table of plain values (escaped), numbers right-aligned; `total` is a bold last row."""
    widths = [col.width for col in cols]
    colgroup = ("<colgroup>" + "".join(f'<col style="width:{text(w)}">' if w else "<col>"
                                       for w in widths) + "</colgroup>") if any(widths) else ""
    head = "".join(f"<th{_cls(col.kind)}>{text(col.title)}</th>" for col in cols)
    body = [_row(cols, row) for row in rows]
    if total is not None:
        body.append(_row(cols, total, "total"))
    classes = " ".join(filter(None, [cls, "fixed" if any(widths) else ""]))
    return (f'<table class="{text(classes)}">{colgroup}<thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def key_values(pairs: Iterable[tuple[str, object]], cls: str = "kv") -> str:
    """A two-column table of labels and values."""
    rows = "".join(f"<tr><th>{text(key)}</th><td>{text(value)}</td></tr>"
                   for key, value in pairs)
    return f'<table class="{text(cls)}"><tbody>{rows}</tbody></table>'


def _cls(kind: str) -> str:
    return "" if kind == "text" else f' class="{text(kind)}"'


def _row(cols: Sequence[Col], row: Sequence[object], cls: str = "") -> str:
    cells = "".join(f"<td{_cls(col.kind)}>{text(value)}</td>"
                    for col, value in zip(cols, row, strict=True))
    return f'<tr class="{cls}">{cells}</tr>' if cls else f"<tr>{cells}</tr>"


def css_string(value: str) -> str:
    """`value` safe inside a double-quoted CSS string in a <style> element."""
    return "".join(ch if ch.isalnum() or ch in " .,-_:()/" else f"\\{ord(ch):x} "
                   for ch in value)
