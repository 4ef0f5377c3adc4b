"""What is wrong with a manifest: every problem, each with its place and its fix."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field


class ManifestProblem(BaseModel):
    """One thing wrong with a manifest (or the media and subtitles it names)."""

    model_config = ConfigDict(frozen=True)

    file: str = Field(description="The file the problem is in (the manifest, a subtitle file, a media file).")
    line: int | None = Field(default=None, description="1-based line number in `file`, when known.")
    language: str | None = Field(default=None, description="The language the problem belongs to.")
    line_id: str | None = Field(default=None, description="The id of the script line, when one is concerned.")
    field: str | None = Field(
        default=None, description="The field, as a dotted path (languages.es.lines[2].end)."
    )
    message: str = Field(description="What is wrong.")
    fix: str | None = Field(default=None, description="How to fix it.")

    def __str__(self) -> str:
        place = self.file + (f":{self.line}" if self.line is not None else "")
        where = [
            part
            for part in (
                f"language {self.language}" if self.language else "",
                f"line {self.line_id}" if self.line_id else "",
                f"field {self.field}" if self.field else "",
            )
            if part
        ]
        head = f"{place}: " + (f"[{', '.join(where)}] " if where else "")
        return head + self.message + (f"\n      fix: {self.fix}" if self.fix else "")


class ManifestError(ValueError):
    """A manifest cannot be planned; `problems` lists every problem found, not only the first."""

    def __init__(self, problems: Iterable[ManifestProblem]) -> None:
        self.problems: list[ManifestProblem] = _unique(problems)
        noun = "problem" if len(self.problems) == 1 else "problems"
        files = sorted({p.file for p in self.problems})
        head = f"manifest {', '.join(files)}: {len(self.problems)} {noun}"
        body = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{head}\n{body}" if body else head)


def _unique(problems: Iterable[ManifestProblem]) -> list[ManifestProblem]:
    seen: set[ManifestProblem] = set()
    out: list[ManifestProblem] = []
    for problem in problems:
        if problem not in seen:
            seen.add(problem)
            out.append(problem)
    return out
