"""What ``review.verify`` found in a session, as data: one verdict per file, each camera's verified
stretches and gaps, and the two ways to read it (JSON for tools, plain words for people).

Times are media time, as the manifest gives them; the plain text counts them from the session's
first segment (``origin_s``), which is about where the exported MP4 starts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

# What a file can be; the module docstring of ``review.verify`` says when each applies.
Kind = Literal["complete", "truncated", "tampered", "foreign", "out_of_order", "missing", "extra"]


@dataclass
class FileReport:
    file: str
    kind: Kind
    detail: str = ""
    camera: str | None = None
    start_s: float | None = None  # the span the manifest lists for it (or, without one, its own)
    end_s: float | None = None
    recovered_s: float | None = None  # cut or damaged: seconds of media readable before the cut
    holds: str | None = None  # out of order: the listed file whose bytes it holds
    gap: tuple[float, float] | None = None  # the stretch of its camera's time it leaves unverified


@dataclass
class Piece:
    """A stretch of one camera's media that verified: what the export joins, in this order."""

    file: str
    start_s: float
    end_s: float
    whole: bool  # authenticated to its final chunk; else only up to where it was cut or damaged
    sha256: str  # of the ciphertext as verified: the export reads only these same bytes


@dataclass
class CameraReport:
    listed_s: float = 0.0  # seconds the manifest lists (without one: what the files hold)
    recorded_s: float = 0.0  # seconds that verified
    gaps: list[tuple[float, float]] = field(default_factory=list)
    pieces: list[Piece] = field(default_factory=list)


@dataclass
class SessionReport:
    session: str
    manifest: str  # "ok", or "<kind>: what is wrong with it"
    fallback: bool = False  # no usable manifest: the files were judged on their own
    ended: bool = False  # the manifest records the session's end
    origin_s: float = 0.0
    files: list[FileReport] = field(default_factory=list)
    cameras: dict[str, CameraReport] = field(default_factory=dict)

    @property
    def whole(self) -> bool:
        return (
            self.manifest == "ok"
            and not self.fallback
            and self.ended
            and all(f.kind == "complete" for f in self.files)
        )

    @property
    def problems(self) -> list[FileReport]:
        return [f for f in self.files if f.kind != "complete"]

    def to_json(self) -> dict[str, Any]:
        return {
            "session": self.session,
            "whole": self.whole,
            "manifest": self.manifest,
            "fallback": self.fallback,
            "ended": self.ended,
            "origin_s": self.origin_s,
            "files": [asdict(f) for f in self.files],
            "cameras": {name: asdict(c) for name, c in self.cameras.items()},
        }

    def plain(self) -> str:
        """One line for the verdict, one per problem, one per camera."""
        problems = self.problems
        if self.whole:
            head = "whole: every file is the one the manifest lists, and authenticates to its end"
        else:
            count = len(problems) + (not self.ended and not self.fallback)
            head = f"NOT WHOLE: {count} problem{'s' if count != 1 else ''}"
        lines = [f"session {self.session}: {head}"]
        if not self.ended and not self.fallback:
            lines.append(
                "session: never closed (the manifest records no end: still being recorded, or the "
                "recorder stopped without closing it)"
            )
        lines += [self._line(f) for f in problems]
        for name, cam in self.cameras.items():
            gaps = ", ".join(self._span(a, b) for a, b in cam.gaps)
            lines.append(
                f"camera {name}: {cam.recorded_s:.1f} s of {cam.listed_s:.1f} s verified"
                + (f"; gaps at {gaps}" if gaps else "")
            )
        return "\n".join(lines)

    def _line(self, f: FileReport) -> str:
        line = f"{f.file}: {f.kind.replace('_', ' ')}"
        if f.detail:
            line += f": {f.detail}"
        if f.gap is not None:
            a, b = f.gap
            line += f" ({b - a:.1f} s gap at {self._span(a, b)})"
        return line

    def _span(self, a: float, b: float) -> str:
        return f"{a - self.origin_s:.1f}–{b - self.origin_s:.1f} s"
