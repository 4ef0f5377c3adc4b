"""What can still be checked of a manifest whose schema fails: the rest of it, with the bad parts left out.

A manifest with one malformed time and one line that ends before it starts should be refused with
both problems, not the first one now and the second after the next try. So when the schema refuses
some nodes, they are set aside: a bad script line is left out of its language, a bad language out
of the manifest, a bad speaker becomes automatic (and is not checked further), a bad setting falls
back to its default. What is left is validated again and planned as usual, to find the timing,
media and speaker problems too; the manifest is refused all the same (its schema problems stay).
A problem in the manifest's frame (`version`, `video`, `languages` itself) leaves nothing to salvage.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from prefect_lipsync.manifest.schema import Manifest
from prefect_lipsync.manifest.source_map import PathKey

#: Top-level keys that may simply be left out (their default applies) when they are malformed.
_OPTIONAL_TOP = ("name", "timecode_start", "defaults")


@dataclass
class Salvaged:
    """The manifest without its refused nodes, and where its remaining lines sit in the file."""

    manifest: Manifest
    #: language -> the original index of each remaining line (only languages that lost lines).
    line_positions: dict[str, list[int]] = field(default_factory=dict)
    #: speakers made automatic because their target was refused: their problems are already said.
    broken_speakers: set[str] = field(default_factory=set)


@dataclass
class _Cuts:
    lines: dict[str, set[int]] = field(default_factory=dict)
    languages: set[str] = field(default_factory=set)
    speakers: set[str] = field(default_factory=set)
    defaults: set[str] = field(default_factory=set)
    top: set[str] = field(default_factory=set)

    def add(self, loc: PathKey, kind: str) -> bool:
        """Set aside the node `loc` points into; False when it is the manifest's frame."""
        head = loc[0] if loc else None
        if head == "languages" and len(loc) >= 4 and loc[2] == "lines" and isinstance(loc[3], int):
            self.lines.setdefault(str(loc[1]), set()).add(loc[3])
        elif head == "languages" and len(loc) >= 2:
            self.languages.add(str(loc[1]))
        elif head == "speakers" and len(loc) >= 2:
            self.speakers.add(str(loc[1]))
        elif head == "defaults" and len(loc) >= 2:
            self.defaults.add(str(loc[1]))
        elif len(loc) == 1 and (head in _OPTIONAL_TOP or kind == "extra_forbidden"):
            self.top.add(str(head))
        else:
            return False
        return True


def clean_loc(loc: Iterable[str | int]) -> PathKey:
    """A pydantic error location without the union members it names (float | str): the manifest's path."""
    return tuple(p for p in loc if p not in ("float", "str", "function-before[_time(), union[float,str]]"))


def salvage(data: Mapping[str, Any], error: ValidationError) -> Salvaged | None:
    """The manifest with every node the schema refused set aside, or None when nothing can be planned."""
    cuts = _Cuts()
    for err in error.errors(include_url=False):
        if not cuts.add(clean_loc(err["loc"]), err["type"]):
            return None
    kept: dict[str, Any] = copy.deepcopy(dict(data))
    for key in cuts.top:
        kept.pop(key, None)
    defaults = kept.get("defaults")
    if isinstance(defaults, dict):
        for key in cuts.defaults:
            defaults.pop(key, None)
    speakers = kept.get("speakers")
    if cuts.speakers:
        if not isinstance(speakers, dict):
            return None
        for name in cuts.speakers:
            speakers[name] = {"auto": True}
    languages = kept.get("languages")
    if not isinstance(languages, dict):
        return None
    positions: dict[str, list[int]] = {}
    for code, bad in cuts.lines.items():
        spec = languages.get(code)
        lines = spec.get("lines") if isinstance(spec, dict) else None
        if not isinstance(spec, dict) or not isinstance(lines, list):
            cuts.languages.add(code)
            continue
        positions[code] = [i for i in range(len(lines)) if i not in bad]
        spec["lines"] = [lines[i] for i in positions[code]]
        if not positions[code]:
            cuts.languages.add(code)
    for code in cuts.languages:
        languages.pop(code, None)
        positions.pop(code, None)
    if not languages:
        return None
    try:
        manifest = Manifest.model_validate(kept)
    except ValidationError:
        return None  # what is left still fails (a cut exposed another rule): its problems are said already
    return Salvaged(manifest, positions, set(cuts.speakers))
