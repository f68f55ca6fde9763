"""Verify a session before trusting it: every file against the manifest's SHA-256 values and hash
chain (and the recovery records a crash left), and against age's authentication of its own
chunks. Writes no plaintext anywhere (``review.sealed_file`` reads each file in memory).

What a file can be (``review.report.Kind``):

- ``complete``: the bytes the manifest (or a recovery record) lists, authenticated to the end;
- ``truncated``: cut short (a crash, a full disk, a copy cut off): readable to its last chunk;
- ``tampered``: age's authentication fails (in which chunk, at which byte, or in the header);
- ``foreign``: encrypted to another key, or authentic to this key yet not the file listed under
  that name (another session's segment, or one re-made): altered or replaced;
- ``out_of_order``: the bytes the manifest lists under another name (segments swapped);
- ``missing``: listed, not here (or not readable);
- ``extra``: here, listed nowhere.

Each camera's verified stretches (``Piece``) are what the export joins, in the manifest's order;
what a missing or bad file should have held is a gap. Without a usable manifest (missing,
damaged, another session's) the files are judged on their own, by their authentication, their
numbering and their media times, and the report says so. Whether a file copied in from another
session is whole there cannot be known here: it is told apart by its hash and its times only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from review.records import is_recovery_record, parse_manifest, parse_recovery
from review.report import CameraReport, FileReport, Piece, SessionReport
from review.sealed_file import SealedFile, read_sealed
from session.layout import (
    COLLECTED,
    LEGAL_HOLD,
    MANIFEST,
    MARKERS,
    PARTIAL,
    VITALS,
    parse_segment_name,
    segment_name,
)
from store.errors import NoIdentityError
from store.keys import Identity

# How far a file's first frame may lie from where the manifest puts its segment and still be that
# segment: a few frames, far less than a segment.
FIT_S = 0.5
# Without a manifest, a hole this long between two segments' media times is a gap (frames are at
# most 0.2 s apart; consecutive segments meet within one frame).
GAP_S = 0.5
_LOGS = (VITALS, MARKERS)
_CRASHED = "cut short by a crash and closed at the next start (a recovery record lists it)"


class WrongIdentityError(NoIdentityError):
    """No file of the session opens with the identities given: the wrong key, not damage."""


def verify_session(session_dir: Path, identities: Sequence[Identity]) -> SessionReport:
    """The integrity report of one session directory; see the module docstring. Raises
    ``WrongIdentityError`` when nothing in it opens with ``identities``."""
    return _Checker(session_dir, list(identities)).run()


class _Checker:
    def __init__(self, session_dir: Path, identities: list[Identity]) -> None:
        self.dir = session_dir
        self.identities = identities
        self.sealed: dict[str, SealedFile] = {}
        self.unreadable: dict[str, str] = {}  # name → why it could not be read
        self.odd: dict[str, str] = {}  # links and folders: never followed
        self.recovered: dict[str, dict[str, Any]] = {}  # final name → its recovery record entry
        self.done: set[str] = {LEGAL_HOLD, COLLECTED}  # plain marks, not the recording's
        self.by_digest: dict[str, str] = {}  # the first file (by name) holding these bytes
        self.report = SessionReport(session_dir.name, "ok")

    def run(self) -> SessionReport:
        for path in sorted(self.dir.iterdir()):
            if path.is_symlink() or not path.is_file():
                self.odd[path.name] = "a link: not followed" if path.is_symlink() else "not a regular file"
            elif path.name not in self.done:
                try:
                    self.sealed[path.name] = read_sealed(path, self.identities)
                except OSError as exc:
                    self.unreadable[path.name] = exc.strerror or str(exc)
        files = self.sealed.values()
        if not any(f.opens for f in files) and any(f.wrong_key for f in files):
            raise WrongIdentityError(
                f"{self.dir.name}: none of its {len(self.sealed)} files opens with this identity "
                "(not the key this session was recorded for)"
            )
        manifest = self._manifest()
        self._recovery_records()
        if manifest is not None:
            self._against_manifest(manifest)
        else:
            self._on_their_own()
        for name in sorted(n for n in self.sealed if n.removesuffix(PARTIAL) in _LOGS):
            self.done.add(name)
            self._add(self._alone(name, None)[0])
        self._extras()
        return self.report

    # --- the records ------------------------------------------------------------------------------

    def _manifest(self) -> dict[str, Any] | None:
        """The manifest if its entries can be used; what is wrong with it is reported either way."""
        self.done.add(MANIFEST)
        sealed = self.sealed.get(MANIFEST)
        manifest: dict[str, Any] | None = None
        if sealed is None:
            verdict = FileReport(MANIFEST, "missing", self.unreadable.get(MANIFEST, "not here"))
        elif not sealed.complete:
            verdict = self._damage(MANIFEST, sealed, None)
            if verdict.kind == "truncated" and sealed.opens:  # written whole, renamed into place
                where = sealed.failed_chunk() or "its last chunk"
                verdict = FileReport(MANIFEST, "tampered", f"{where} fails authentication: altered")
        else:
            manifest, verdict = parse_manifest(sealed.plain, self.dir.name)
        self._add(verdict)
        if verdict.kind != "complete":
            self.report.manifest = f"{verdict.kind}: {verdict.detail}"
        if manifest is None:
            self.report.fallback = True
            verdict.detail += (
                "; so each file was judged on its own (its age authentication, numbering and media "
                "times), with no hashes or chain to check it against"
            )
            return None
        self.report.session = str(manifest.get("session"))
        self.report.ended = bool(manifest.get("ended_utc"))
        return manifest

    def _recovery_records(self) -> None:
        for name in sorted(filter(is_recovery_record, self.sealed)):
            self.done.add(name)
            sealed = self.sealed[name]
            if not sealed.complete:
                self._add(self._damage(name, sealed, None))
                continue
            files, verdict = parse_recovery(name, sealed.plain, self.report.session)
            self._add(verdict)
            for entry in files:
                self.recovered.setdefault(entry["file"], entry)

    # --- segments, against the manifest -------------------------------------------------------

    def _against_manifest(self, manifest: dict[str, Any]) -> None:
        entries: list[dict[str, Any]] = manifest["segments"]
        for camera in manifest.get("cameras", []):
            if isinstance(camera, dict) and isinstance(camera.get("name"), str):
                self.report.cameras.setdefault(camera["name"], CameraReport())
        self.report.origin_s = min((float(e["start_s"]) for e in entries), default=0.0)
        listed_by_digest: dict[str, dict[str, Any]] = {}
        for entry in entries:
            if entry["sha256"]:
                listed_by_digest.setdefault(entry["sha256"], entry)
        for name, sealed in sorted(self.sealed.items()):
            self.by_digest.setdefault(sealed.digest, name)
        for entry in entries:
            self._entry(entry, listed_by_digest)
        for name in sorted(set(self.sealed) - self.done):
            if name.removesuffix(PARTIAL) in _LOGS or name.startswith(MANIFEST):
                continue
            other = listed_by_digest.get(self.sealed[name].digest)
            if other is not None:  # a listed segment's bytes under a name not its own
                self.done.add(name)
                self._add(self._elsewhere(name, other))
                continue
            parsed = parse_segment_name(name)
            if parsed is not None and (parsed.partial or name in self.recovered):
                self._unlisted(name, parsed.camera)

    def _entry(self, entry: dict[str, Any], listed_by_digest: dict[str, dict[str, Any]]) -> None:
        camera, start, end = str(entry["camera"]), float(entry["start_s"]), float(entry["end_s"])
        cam = self.report.cameras.setdefault(camera, CameraReport())
        cam.listed_s += end - start
        final = str(entry["file"]).removesuffix(PARTIAL)
        here = {*self.sealed, *self.unreadable}
        name = next((n for n in (str(entry["file"]), final, final + PARTIAL) if n in here), None)
        record = self.recovered.get(final)
        expected = str(record["sha256"] if record is not None else entry["sha256"])
        if name is None:
            verdict = FileReport(final, "missing", "listed in the manifest, not here")
        elif name in self.unreadable:
            verdict = FileReport(name, "missing", f"cannot be read: {self.unreadable[name]}")
        else:
            verdict = self._judge(name, entry, expected, listed_by_digest, record is not None)
        self.done.add(name or final)
        # The entry's bytes: under its name, or (swapped, renamed) under another.
        source = self.by_digest.get(expected) if expected else None
        if name in self.sealed and self.sealed[name].digest == expected:
            source = name
        piece = None
        if source is not None:
            sealed = self.sealed[source]
            held = end - start if sealed.complete else _held(sealed, start, end)
            piece = Piece(source, start, start + held, sealed.complete, sealed.digest)
            if verdict.kind == "missing" and source != name:
                verdict.detail += f"; its bytes are in {source}, exported in its place"
        elif name in self.sealed and verdict.kind in ("truncated", "tampered") and verdict.recovered_s:
            # Not the listed bytes, but what authenticates of them fits the listed span.
            piece = Piece(name, start, start + verdict.recovered_s, False, self.sealed[name].digest)
        verdict.camera, verdict.start_s, verdict.end_s = camera, start, end
        covered = start
        if piece is not None:
            cam.pieces.append(piece)
            cam.recorded_s += piece.end_s - piece.start_s
            covered = piece.end_s
        if end - covered > 1e-3:
            verdict.gap = (covered, end)
            _add_gap(cam, covered, end)
        self._add(verdict)

    def _judge(
        self,
        name: str,
        entry: dict[str, Any],
        expected: str,
        listed_by_digest: dict[str, dict[str, Any]],
        recovered: bool,
    ) -> FileReport:
        sealed = self.sealed[name]
        start, end = float(entry["start_s"]), float(entry["end_s"])
        if expected and sealed.digest == expected:
            if sealed.complete:
                renamed = name.endswith(PARTIAL) and not str(entry["file"]).endswith(PARTIAL)
                return FileReport(
                    name, "complete", "the listed bytes, under a .partial name" if renamed else ""
                )
            if sealed.cut:
                held = _held(sealed, start, end)
                why = _CRASHED if recovered else "cut short as it was closed (the manifest lists it so)"
                detail = f"{why}: {held:.1f} s of {end - start:.1f} s readable"
                return FileReport(name, "truncated", detail, recovered_s=held)
        other = listed_by_digest.get(sealed.digest)
        if other is not None and other is not entry:
            return self._elsewhere(name, other)
        return self._damage(name, sealed, entry)

    def _elsewhere(self, name: str, other: dict[str, Any]) -> FileReport:
        """A file holding the bytes the manifest lists under another name."""
        listed = str(other["file"])
        home = next(
            (n for n in (listed, listed.removesuffix(PARTIAL)) if n in self.sealed and n != name), None
        )
        if home is not None and self.sealed[home].digest == self.sealed[name].digest:
            return FileReport(name, "extra", f"a copy of {home}")
        return FileReport(name, "out_of_order", f"holds {listed}, exported in its place", holds=listed)

    def _damage(self, name: str, sealed: SealedFile, entry: dict[str, Any] | None) -> FileReport:
        """What age says of a file whose bytes are not the listed ones (or that nothing lists)."""
        listed = entry.get("bytes") if entry is not None else None
        listed = listed if isinstance(listed, int) else None
        size = f"{sealed.size:,} bytes" + (f"; {listed:,} listed" if listed is not None else "")
        if sealed.in_header:
            if sealed.wrong_key and listed == sealed.size:
                detail = (
                    f"its header no longer opens with this key, yet it has the listed size ({sealed.size:,} "
                    "bytes): the header was altered"
                )
                return FileReport(name, "tampered", detail)
            if sealed.wrong_key:
                return FileReport(name, "foreign", f"encrypted to another key ({size})")
            if not sealed.size:
                return FileReport(name, "truncated", f"empty ({size}): nothing readable", recovered_s=0.0)
            if sealed.cut and sealed.is_age:
                return FileReport(name, "truncated", f"cut inside its header ({size})", recovered_s=0.0)
            if sealed.cut:
                return FileReport(name, "tampered", f"not an age file ({size})")
            return FileReport(name, "tampered", f"its header: {_message(name, sealed)}")
        media = sealed.media
        if entry is not None and media is not None and abs(media.start_s - float(entry["start_s"])) > FIT_S:
            origin = self.report.origin_s
            detail = (
                f"altered or replaced: it opens with this key, but what it holds starts at "
                f"{media.start_s - origin:.1f} s, not at {float(entry['start_s']) - origin:.1f} s "
                "(another session's, or another segment's)"
            )
            return FileReport(name, "foreign", detail)
        if sealed.complete:
            if entry is None:
                return FileReport(name, "foreign", "it opens with this key")
            detail = "altered or replaced: it opens with this key and its times fit, but its bytes differ"
            return FileReport(name, "foreign", detail)
        held = _held(sealed, float(entry["start_s"]), float(entry["end_s"])) if entry is not None else None
        if held is None and media is not None:
            held = round(media.end_s - media.start_s, 3)
        readable = f"{held:.1f} s readable" if held is not None else f"{sealed.chunks} whole chunks readable"
        if sealed.cut and (listed is None or sealed.size < listed):
            return FileReport(name, "truncated", f"cut short ({size}): {readable}", recovered_s=held)
        where = sealed.failed_chunk()
        what = f"{where} fails authentication" if where else _message(name, sealed)
        if sealed.cut:  # a last chunk that fails reads as a cut, but nothing was cut
            what += ", yet the file has its listed size: altered"
        return FileReport(name, "tampered", f"{what}; {readable} before it", recovered_s=held)

    def _unlisted(self, name: str, camera: str) -> None:
        """A segment no manifest entry lists: closed after a crash (a recovery record lists it),
        or still ``.partial`` (being written, or left by a crash not yet recovered)."""
        self.done.add(name)
        verdict, piece = self._alone(name, camera)
        cam = self.report.cameras.setdefault(camera, CameraReport())
        last_end = max((p.end_s for p in cam.pieces), default=None)
        if piece is not None and last_end is not None and piece.start_s < last_end - FIT_S:
            verdict.detail += "; its times overlap the listed segments: not exported"
            piece = None
        if piece is not None:
            cam.pieces.append(piece)
            cam.recorded_s += piece.end_s - piece.start_s
            cam.listed_s += piece.end_s - piece.start_s
        self._add(verdict)

    # --- segments, without a manifest ---------------------------------------------------------

    def _on_their_own(self) -> None:
        by_camera: dict[str, list[tuple[int, str]]] = {}
        for name in [*self.sealed, *self.unreadable]:
            parsed = parse_segment_name(name)
            if parsed is not None:
                by_camera.setdefault(parsed.camera, []).append((parsed.index, name))
        readable: dict[str, list[tuple[Piece, FileReport]]] = {}
        for camera, numbered in sorted(by_camera.items()):
            self.report.cameras.setdefault(camera, CameraReport())
            numbered.sort()
            found = readable.setdefault(camera, [])
            for _index, name in numbered:
                self.done.add(name)
                if name in self.unreadable:
                    why = f"cannot be read: {self.unreadable[name]}"
                    self._add(FileReport(name, "missing", why, camera=camera))
                    continue
                verdict, piece = self._alone(name, camera)
                self._add(verdict)
                if piece is not None:
                    found.append((piece, verdict))
            numbers = {index for index, _name in numbered}
            for index in range(min(numbers), max(numbers)):
                if index not in numbers:
                    missing = segment_name(camera, index)
                    self._add(FileReport(missing, "missing", "judged by the numbering", camera=camera))
            # The numbers and the media times must agree: the longest run of files on which they
            # do is the recording. A file off it was moved or copied in, and with no manifest to
            # say which, it is left out: a gap, never a splice.
            agreeing = _longest_rising([piece.start_s for piece, _v in found])
            for i, (_piece, verdict) in enumerate(found):
                if i not in agreeing:
                    verdict.kind = "out_of_order"
                    verdict.detail = (
                        "its media times do not follow from its number, and no manifest places it: "
                        "not exported"
                    )
            readable[camera] = [pv for i, pv in enumerate(found) if i in agreeing]
        self.report.origin_s = min((p.start_s for ps in readable.values() for p, _v in ps), default=0.0)
        for camera, in_time in readable.items():
            cam = self.report.cameras[camera]
            cam.pieces = [p for p, _v in in_time]
            reached: float | None = None
            for piece in cam.pieces:
                cam.recorded_s += piece.end_s - piece.start_s
                if reached is not None and piece.start_s - reached > GAP_S:
                    _add_gap(cam, reached, piece.start_s)
                reached = piece.end_s if reached is None else max(reached, piece.end_s)
            if cam.pieces and reached is not None:
                cam.listed_s = reached - cam.pieces[0].start_s

    def _alone(self, name: str, camera: str | None) -> tuple[FileReport, Piece | None]:
        """A file judged by itself (and by a recovery record, if one lists it)."""
        sealed = self.sealed[name]
        record = self.recovered.get(name.removesuffix(PARTIAL))
        if record is not None and sealed.digest != record["sha256"]:
            verdict = self._damage(name, sealed, None)
            if sealed.opens:
                verdict = FileReport(name, "foreign", "not the file its recovery record lists")
            verdict.camera = camera
            return verdict, None
        if sealed.complete:
            verdict = FileReport(name, "complete", camera=camera)
        elif sealed.opens and sealed.cut:
            if record is not None:
                why = _CRASHED
            elif name.endswith(PARTIAL):
                why = "never closed, listed nowhere: being recorded, or left by a crash not yet recovered"
            else:
                why = "cut short"
            verdict = FileReport(name, "truncated", why, camera=camera)
        else:
            verdict = self._damage(name, sealed, None)
            verdict.camera = camera
        media = sealed.media
        if media is None or not sealed.opens or verdict.kind not in ("complete", "truncated", "tampered"):
            if verdict.kind == "truncated" and camera is None:
                verdict.detail += ": readable to its last whole chunk"
            return verdict, None
        verdict.start_s, verdict.end_s = media.start_s, media.end_s
        if not sealed.complete:
            verdict.recovered_s = round(media.end_s - media.start_s, 3)
            if verdict.kind == "truncated":
                verdict.detail += f": {verdict.recovered_s:.1f} s readable"
        return verdict, Piece(name, media.start_s, media.end_s, sealed.complete, sealed.digest)

    # --- everything else ------------------------------------------------------------------------

    def _extras(self) -> None:
        for name in sorted({*self.sealed, *self.unreadable, *self.odd} - self.done):
            if name == MANIFEST + ".new" + PARTIAL:
                detail = "a manifest update a crash cut short (the manifest is whole without it)"
                self._add(FileReport(name, "truncated", detail))
            elif name == MANIFEST + ".new":
                self._add(FileReport(name, "extra", "a manifest update a crash kept from its rename"))
            elif name in self.odd:
                self._add(FileReport(name, "extra", self.odd[name]))
            elif name in self.unreadable:
                self._add(
                    FileReport(name, "extra", f"listed nowhere; cannot be read: {self.unreadable[name]}")
                )
            else:
                what = self._damage(name, self.sealed[name], None).detail
                self._add(FileReport(name, "extra", f"listed in no manifest or recovery record ({what})"))

    def _add(self, verdict: FileReport) -> None:
        self.report.files.append(verdict)


def _longest_rising(starts: list[float]) -> set[int]:
    """The positions of the longest run (not necessarily adjacent) of values that rise."""
    best: list[list[int]] = []  # best[i]: the longest rising run that ends at i
    for i, start in enumerate(starts):
        longest: list[int] = []
        for j in range(i):
            if starts[j] < start and len(best[j]) > len(longest):
                longest = best[j]
        best.append([*longest, i])
    run: list[int] = max(best, key=len, default=[])
    return set(run)


def _held(sealed: SealedFile, start: float, end: float) -> float:
    """Seconds of a listed segment's span that its authenticated part covers."""
    if sealed.media is None:
        return 0.0
    return round(min(max(sealed.media.end_s - start, 0.0), end - start), 3)


def _message(name: str, sealed: SealedFile) -> str:
    return str(sealed.error).removeprefix(f"{name}: ")


def _add_gap(cam: CameraReport, start: float, end: float) -> None:
    if cam.gaps and abs(cam.gaps[-1][1] - start) < 1e-3:  # bad segments in a row: one gap
        cam.gaps[-1] = (cam.gaps[-1][0], end)
    else:
        cam.gaps.append((start, end))


__all__ = ["SessionReport", "WrongIdentityError", "verify_session"]
