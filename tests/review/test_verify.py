"""verify and the checked export on a real recorded session, whole and with each of thirteen kinds
of damage: the report names the file and the kind, the exit status says whether the session is
whole, the export finishes with media that plays (a bad stretch a gap, never a splice), and the
export's folder is private, one session's, and all or nothing."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cli.main import main as cli_main
from config.loading import parse_config
from recorder.daemon import Daemon, wait_for_frames
from review.export import ExportError, decrypt, export_session
from review.verify import WrongIdentityError, verify_session
from session.layout import MANIFEST, PARTIAL, RECOVERY, chain_value, segment_name
from session.recovery import recover_session
from store.age_writer import AgeWriter
from store.encrypted_file import EncryptedFileWriter
from store.keys import Identity

pytestmark = pytest.mark.slow


class Recorded:
    def __init__(self, root: Path, identity: Identity, sessions: list[Path]) -> None:
        self.root = root
        self.identity = identity
        self.sessions = sessions
        self.key = root / "review-key.txt"
        self.key.write_text(str(identity) + "\n")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    """Two sessions from the real daemon (test pattern, tone audio, 2 s segments): one of about
    5 s (at least 3 segments) to damage, one of about 3 s to copy a segment from."""
    root = tmp_path_factory.mktemp("verify")
    identity = Identity.generate()
    config = parse_config(
        f"""
[station]
control_socket = "{root / "control.sock"}"
[[cameras]]
name = "closeup"
source = {{ kind = "test_pattern" }}
width = 320
height = 240
fps = 15
audio = true
[audio]
source = {{ kind = "tone", frequency_hz = 1000 }}
[encoding]
keyframe_interval_s = 1.0
[storage]
directory = "{root / "recordings"}"
segment_seconds = 2
recipients = ["{identity.recipient}"]
[session]
preroll_s = 0
"""
    )
    daemon = Daemon(config, [identity.recipient])
    stop = threading.Event()
    loop = threading.Thread(target=daemon.run, args=(stop,), daemon=True)
    daemon.start()
    loop.start()
    sessions = []
    try:
        assert wait_for_frames(daemon)
        # As on a table PC, where the encoder runs long before any recording: the first segment
        # the encoder ever makes can overlap the next by a frame, which the export does not join.
        time.sleep(3)
        for seconds, segments in ((5.0, 3), (3.0, 2)):
            daemon.handle_request({"cmd": "start", "by": "command line"})
            daemon.handle_request({"cmd": "mark", "label": "birth", "by": "command line"})
            time.sleep(seconds)
            daemon.handle_request({"cmd": "stop", "by": "command line"})
            last = daemon.status().session.last_session
            assert last is not None and last["segments"] >= segments
            sessions.append(Path(last["path"]))
    finally:
        stop.set()
        loop.join()
        daemon.shutdown()
    yield Recorded(root, identity, sessions)


@pytest.fixture
def session(recorded: Recorded, tmp_path: Path) -> Path:
    copy = tmp_path / "recordings" / recorded.sessions[0].name
    shutil.copytree(recorded.sessions[0], copy)
    return copy


# --- the damage ------------------------------------------------------------------------------


def seg(folder: Path, index: int) -> Path:
    return folder / segment_name("closeup", index)


def last_segment(folder: Path) -> Path:
    return max((p for p in folder.iterdir() if p.name.startswith("closeup-")), key=lambda p: p.name)


def flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def flip_in_stanza(path: Path) -> None:
    """One character of the recipient stanza's wrapped file key changed (still valid base64): age
    can only say that no identity opens it."""
    lines = path.read_bytes().split(b"\n")
    body = bytearray(lines[2])
    body[10] = ord("A") if body[10] != ord("A") else ord("B")
    lines[2] = bytes(body)
    path.write_bytes(b"\n".join(lines))


def other_key(path: Path) -> None:
    with path.open("wb") as out, AgeWriter(out, [Identity.generate().recipient]) as writer:
        writer.write(b"\x47" * 5000)


def swap(folder: Path) -> None:
    a, b = seg(folder, 1), seg(folder, 2)
    a.rename(folder / "swap")
    b.rename(a)
    (folder / "swap").rename(b)


def rewrite_manifest(folder: Path, identity: Identity, change: Callable[[dict[str, Any]], None]) -> None:
    manifest = json.loads(decrypt(folder / MANIFEST, [identity])[0])
    change(manifest)
    (folder / MANIFEST).unlink()
    writer = EncryptedFileWriter(folder / MANIFEST, [identity.recipient], 1.0)
    writer.write(json.dumps(manifest).encode())
    writer.close()


def crash_while_writing(folder: Path, identity: Identity) -> None:
    """What a crash while segment 3 was being written leaves: the manifest lists segments 1 and 2
    and no end; segment 3 is .partial, cut mid-chunk; nothing came after it."""

    def before_segment_3(manifest: dict[str, Any]) -> None:
        kept = [e for e in manifest["segments"] if e["index"] < 3]
        chain = ""
        for entry in kept:
            entry["chain"] = chain = chain_value(entry, chain)
        manifest.update(segments=kept, chain=chain, ended_utc=None, end_reason=None)

    rewrite_manifest(folder, identity, before_segment_3)
    data = seg(folder, 3).read_bytes()
    seg(folder, 3).unlink()
    (folder / (segment_name("closeup", 3) + PARTIAL)).write_bytes(data[: len(data) * 2 // 3])
    for later in folder.glob("closeup-*.ts.age"):
        if int(later.name.split("-")[1].split(".")[0]) > 3:
            later.unlink()


EXTRA = "closeup-000099.ts.age"

# what is done → (the file the report must name, the kind it must give it)
DAMAGE: dict[str, tuple[Callable[[Path, Recorded], object], str, str]] = {
    "flipped payload byte": (lambda f, r: flip(seg(f, 2), 100_000), segment_name("closeup", 2), "tampered"),
    "flipped header byte": (lambda f, r: flip_in_stanza(seg(f, 2)), segment_name("closeup", 2), "tampered"),
    "zero-length segment": (lambda f, r: seg(f, 2).write_bytes(b""), segment_name("closeup", 2), "truncated"),
    "another key": (lambda f, r: other_key(seg(f, 2)), segment_name("closeup", 2), "foreign"),
    "middle removed": (lambda f, r: seg(f, 2).unlink(), segment_name("closeup", 2), "missing"),
    "last removed": (lambda f, r: last_segment(f).unlink(), "LAST", "missing"),
    "from another session": (
        lambda f, r: shutil.copy(seg(r.sessions[1], 2), seg(f, 2)),
        segment_name("closeup", 2),
        "foreign",
    ),
    "swapped": (lambda f, r: swap(f), segment_name("closeup", 1), "out_of_order"),
    "manifest corrupted": (lambda f, r: flip(f / MANIFEST, 200), MANIFEST, "tampered"),
    "manifest missing": (lambda f, r: (f / MANIFEST).unlink(), MANIFEST, "missing"),
    "truncated": (
        lambda f, r: seg(f, 2).write_bytes(seg(f, 2).read_bytes()[:150_000]),
        segment_name("closeup", 2),
        "truncated",
    ),
    "extra file": (lambda f, r: (f / EXTRA).write_bytes(b"x"), EXTRA, "extra"),
    ".partial segment": (
        lambda f, r: crash_while_writing(f, r.identity),
        segment_name("closeup", 3) + PARTIAL,
        "truncated",
    ),
}


def cli(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli_main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def plays(video: Path) -> None:
    """ffprobe reads it and ffmpeg decodes every frame of it without a word of complaint."""
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type", "-of", "csv=p=0", str(video)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert probe.returncode == 0 and "video" in probe.stdout, probe.stderr
    decoded = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(video), "-f", "null", "-"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert decoded.returncode == 0 and decoded.stderr == "", decoded.stderr


def video_times(video: Path) -> list[float]:
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "packet=pts_time",
         "-of", "csv=p=0", str(video)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return sorted(float(t) for t in probe.stdout.split())


def media_zero(export: Path) -> float:
    """The media time the export's MP4 starts at (its time zero)."""
    return float(json.loads((export / "session.json").read_text())["media_start_s"])


# --- verify ----------------------------------------------------------------------------------


def test_a_whole_session_verifies_and_nothing_is_written(
    recorded: Recorded, session: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = sorted(p.relative_to(session.parent.parent) for p in session.parent.parent.rglob("*"))
    report = verify_session(session, [recorded.identity])
    assert report.whole, report.plain()
    assert report.cameras["closeup"].recorded_s > 4 and report.cameras["closeup"].gaps == []
    code, out, _err = cli("verify", str(session), "--identity", str(recorded.key), capsys=capsys)
    assert code == 0 and "whole" in out.splitlines()[0]
    after = sorted(p.relative_to(session.parent.parent) for p in session.parent.parent.rglob("*"))
    assert after == before  # no plaintext, no temporary file, nothing


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_each_kind_of_damage_is_named_and_the_export_still_plays(
    recorded: Recorded, session: Path, damage: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    do, name, kind = DAMAGE[damage]
    if name == "LAST":
        name = last_segment(session).name
    do(session, recorded)

    report = verify_session(session, [recorded.identity])
    found = {f.file: f for f in report.files}
    assert name in found and found[name].kind == kind, report.plain()
    assert not report.whole
    assert any(line.startswith(f"{name}: {kind.replace('_', ' ')}") for line in report.plain().splitlines())
    code, out, _err = cli("verify", str(session), "--identity", str(recorded.key), "--json", capsys=capsys)
    assert code == 1
    assert json.loads(out) == json.loads(json.dumps(report.to_json()))
    if name == MANIFEST:  # the files were judged on their own, and the report says so
        assert report.fallback and "judged on its own" in found[MANIFEST].detail
    elif kind != "extra" and damage != ".partial segment":
        assert report.cameras["closeup"].gaps or kind == "out_of_order", report.plain()
    if damage == "swapped":
        assert found[segment_name("closeup", 2)].kind == "out_of_order"
    if damage == "truncated":  # 150,000 bytes of a 2 s segment: part of it is still there
        assert 0 < (found[name].recovered_s or 0) < 2.0, report.plain()
    if damage == "flipped payload byte":
        assert "chunk 1 (bytes" in found[name].detail
    if damage == "flipped header byte":
        assert "header" in found[name].detail

    out_dir = tmp_path / "export"
    code, out, _err = cli(
        "export", str(session), "--identity", str(recorded.key), "--out", str(out_dir), capsys=capsys
    )
    assert code == 1  # exported, and said not to be whole
    assert report.plain() in out
    assert (out_dir / "report.txt").read_text() == report.plain() + "\n"
    assert json.loads((out_dir / "report.json").read_text())["whole"] is False
    videos = list(out_dir.glob("*.mp4"))
    assert [v.name for v in videos] == ["closeup.mp4"]
    for video in videos:
        plays(video)


def test_header_damage_anywhere_is_tampered_not_a_wrong_key(recorded: Recorded, session: Path) -> None:
    data = seg(session, 2).read_bytes()
    version_line, stanza_line, _body_line = data.split(b"\n")[:3]
    stanza = len(version_line) + 1 + len(b"-> X25519 ") + 10  # the ephemeral share
    body = len(version_line) + 1 + len(stanza_line) + 1 + 10  # the wrapped file key
    mac = data.index(b"\n---") + len(b"\n--- ") + 10
    for at in (3, stanza, body, mac):
        copy = session.parent / f"at-{at}" / session.name
        shutil.copytree(session, copy)
        flip(seg(copy, 2), at)
        verdict = {f.file: f for f in verify_session(copy, [recorded.identity]).files}[seg(copy, 2).name]
        assert verdict.kind == "tampered" and "header" in verdict.detail, (at, verdict)


def test_a_missing_stretch_is_a_gap_in_the_video_not_a_splice(
    recorded: Recorded, session: Path, tmp_path: Path
) -> None:
    whole = export_session(recorded.sessions[0], [recorded.identity], tmp_path / "whole")
    seg(session, 2).unlink()
    result = export_session(session, [recorded.identity], tmp_path / "export")
    assert result.report is not None
    (gap_start, gap_end), *_ = result.report.cameras["closeup"].gaps
    times = [t + media_zero(tmp_path / "export") for t in video_times(result.videos["closeup"])]
    jump, (before, after) = max((b - a, (a, b)) for a, b in itertools.pairwise(times))
    assert jump > 1.5 and before < gap_start + 0.1 and after > gap_end - 0.1, (before, after)
    # Every frame on either side of the gap is the one the whole session has there.
    whole_times = [t + media_zero(tmp_path / "whole") for t in video_times(whole.videos["closeup"])]
    outside = [t for t in whole_times if not gap_start - 0.2 < t < gap_end + 0.2]
    assert all(any(abs(t - u) < 1e-3 for u in times) for t in outside)


def test_swapped_segments_are_exported_in_the_manifests_order(
    recorded: Recorded, session: Path, tmp_path: Path
) -> None:
    whole = export_session(recorded.sessions[0], [recorded.identity], tmp_path / "whole")
    swap(session)
    swapped = export_session(session, [recorded.identity], tmp_path / "swapped")
    assert video_times(swapped.videos["closeup"]) == video_times(whole.videos["closeup"])


def test_without_a_manifest_a_file_that_does_not_fit_is_never_spliced_in(
    recorded: Recorded, session: Path, tmp_path: Path
) -> None:
    (session / MANIFEST).unlink()
    shutil.copy(seg(recorded.sessions[1], 2), seg(session, 2))  # opens with the key, but later
    result = export_session(session, [recorded.identity], tmp_path / "export")
    report = result.report
    assert report is not None and report.fallback and not report.whole
    found = {f.file: f for f in report.files}
    assert found[MANIFEST].kind == "missing" and "judged on its own" in found[MANIFEST].detail
    assert found[seg(session, 2).name].kind == "out_of_order", report.plain()
    assert found[seg(session, 1).name].kind == found[seg(session, 3).name].kind == "complete"
    (gap_start, gap_end), *_ = report.cameras["closeup"].gaps
    zero = media_zero(tmp_path / "export")
    times = [t + zero for t in video_times(result.videos["closeup"])]
    assert not [t for t in times if gap_start + 0.1 < t < gap_end - 0.1]
    other = json.loads(decrypt(recorded.sessions[1] / MANIFEST, [recorded.identity])[0])
    copied_from = next(e["start_s"] for e in other["segments"] if e["index"] == 2)
    assert max(times) < copied_from  # nothing of the other session, recorded later, after it


def test_a_crash_recovered_session_expects_the_files_recovery_closed(
    recorded: Recorded, session: Path
) -> None:
    crash_while_writing(session, recorded.identity)
    recover_session(session, [recorded.identity.recipient])
    report = verify_session(session, [recorded.identity])
    found = {f.file: f for f in report.files}
    assert found[RECOVERY].kind == "complete"
    cut = found[segment_name("closeup", 3)]
    assert cut.kind == "truncated" and "recovery record" in cut.detail, report.plain()
    assert not [f for f in report.files if f.kind == "extra"], report.plain()
    assert not report.whole and not report.ended


def test_a_wrong_or_missing_identity_is_one_clear_line(
    recorded: Recorded, session: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = tmp_path / "wrong.txt"
    wrong.write_text(str(Identity.generate()) + "\n")
    with pytest.raises(WrongIdentityError):
        verify_session(session, [Identity.generate()])
    for command in ("verify", "export"):
        for key in (tmp_path / "nope.txt", wrong):
            args = [command, str(session), "--identity", str(key)]
            args += ["--out", str(tmp_path / "out")] if command == "export" else []
            code, out, err = cli(*args, capsys=capsys)
            assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, (command, key, err)
            assert str(key) in err
    assert not (tmp_path / "out").exists()
    # And as the command line runs it: no traceback.
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "verify", str(session), "--identity", str(wrong)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "none of its" in done.stderr and len(done.stderr.strip().splitlines()) == 1


# --- the export's folder ---------------------------------------------------------------------


def test_the_export_is_private_and_one_session_per_folder(
    recorded: Recorded, session: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "export"
    old = os.umask(0o022)
    try:
        export_session(session, [recorded.identity], out)
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o700
    made = sorted(p.name for p in out.iterdir())
    assert {"closeup.mp4", "report.json", "report.txt", "session.json"} <= set(made)
    assert {p.stat().st_mode & 0o777 for p in out.iterdir()} == {0o600}
    export_session(session, [recorded.identity], out)  # the same session again: replaced
    assert sorted(p.name for p in out.iterdir()) == made
    with pytest.raises(ExportError, match="folder of its own"):
        export_session(recorded.sessions[1], [recorded.identity], out)
    code, _out, err = cli(
        "export", str(recorded.sessions[1]), "--identity", str(recorded.key), "--out", str(out), capsys=capsys
    )
    assert code == 2 and "folder of its own" in err
    assert sorted(p.name for p in out.iterdir()) == made
    assert json.loads((out / "session.json").read_text())["session"] == session.name


def test_a_failed_export_leaves_nothing_behind(
    recorded: Recorded, session: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import review.export as export

    out = tmp_path / "export"
    export_session(session, [recorded.identity], out)
    earlier = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk gone")

    monkeypatch.setattr(export, "_write_markers_csv", broken)  # after the video is written
    with pytest.raises(RuntimeError):
        export.export_session(session, [recorded.identity], tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()
    with pytest.raises(RuntimeError):  # a second export of the same session that fails
        export.export_session(session, [recorded.identity], out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == earlier  # the earlier one, untouched
