"""age X25519 keys: text forms, key files, and agreement with the reference age tools."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from store import bech32
from store.errors import KeyFormatError
from store.keys import Identity, Recipient, identity_file_text, load_identities, load_recipients

# The example key pair from the age specification.
SPEC_IDENTITY = "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX"
SPEC_RECIPIENT = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj"


def test_spec_identity_derives_spec_recipient() -> None:
    identity = Identity.parse(SPEC_IDENTITY)
    assert str(identity.recipient) == SPEC_RECIPIENT
    assert str(identity) == SPEC_IDENTITY
    assert Recipient.parse(SPEC_RECIPIENT) == identity.recipient


def test_generated_keys_round_trip_through_text() -> None:
    identity = Identity.generate()
    assert Identity.parse(str(identity)) == identity
    assert Identity.parse(str(identity).lower()) == identity
    assert Recipient.parse(str(identity.recipient)) == identity.recipient
    assert str(identity).startswith("AGE-SECRET-KEY-1")
    assert str(identity.recipient).startswith("age1")
    assert Identity.generate() != identity


def test_repr_never_shows_the_secret() -> None:
    identity = Identity.generate()
    secret = str(identity)
    payload = secret[len("AGE-SECRET-KEY-1") :]
    assert payload not in repr(identity)
    assert payload.lower() not in repr(identity).lower()
    assert str(identity.recipient) in repr(identity)


def test_bad_checksum_names_the_recipient() -> None:
    good = str(Identity.generate().recipient)
    last = "q" if good[-1] != "q" else "p"
    bad = good[:-1] + last
    with pytest.raises(KeyFormatError, match=r"not an age X25519 recipient: 'age1.*' \(bad checksum\)"):
        Recipient.parse(bad)


def test_short_recipient_is_refused_with_its_length() -> None:
    short = bech32.encode("age", bytes(16))
    with pytest.raises(KeyFormatError, match="16 bytes"):
        Recipient.parse(short)


def test_other_recipient_types_are_refused_by_name() -> None:
    pq_like = bech32.encode("age1pq", bytes(32))
    with pytest.raises(KeyFormatError, match="'age1pq' is not supported"):
        Recipient.parse(pq_like)


def test_secret_given_as_recipient_is_refused_without_echoing_it() -> None:
    secret = str(Identity.generate())
    with pytest.raises(KeyFormatError) as info:
        Recipient.parse(secret)
    assert secret[16:] not in str(info.value)
    assert "secret key" in str(info.value)


def test_identity_errors_never_quote_the_input() -> None:
    secret = str(Identity.generate())
    damaged = secret[:-1] + ("Q" if secret[-1] != "Q" else "P")
    with pytest.raises(KeyFormatError, match="bad checksum") as info:
        Identity.parse(damaged)
    assert damaged[16:40] not in str(info.value)
    with pytest.raises(KeyFormatError, match="AGE-SECRET-KEY-1"):
        Identity.parse(str(Identity.generate().recipient))


def test_key_file_layout_matches_age_keygen(tmp_path: Path, age_keygen: Callable[[], Path]) -> None:
    theirs = age_keygen().read_text().splitlines()
    # age-keygen stamps local time; so does ours, given a local time.
    ours = identity_file_text(Identity.generate(), datetime.now().astimezone()).splitlines()
    assert len(ours) == len(theirs) == 3
    for mine, reference in zip(ours, theirs, strict=True):
        # Same layout line by line: same fixed words, same field shapes.
        shape = re.sub(r"[0-9]", "9", re.sub(r"[a-z0-9]{20,}|[A-Z0-9]{20,}", "KEY", reference))
        assert re.sub(r"[0-9]", "9", re.sub(r"[a-z0-9]{20,}|[A-Z0-9]{20,}", "KEY", mine)) == shape


def test_key_file_timestamps() -> None:
    identity = Identity.generate()
    utc = identity_file_text(identity, datetime(2026, 3, 1, 12, 30, 5, 999, tzinfo=UTC))
    assert utc.splitlines()[0] == "# created: 2026-03-01T12:30:05Z"
    plus2 = timezone(timedelta(hours=2))
    local = identity_file_text(identity, datetime(2026, 3, 1, 14, 30, 5, tzinfo=plus2))
    assert local.splitlines()[0] == "# created: 2026-03-01T14:30:05+02:00"
    assert local.splitlines()[1] == f"# public key: {identity.recipient}"
    assert local.splitlines()[2] == str(identity)
    naive = identity_file_text(identity, datetime(2026, 3, 1, 14, 30, 5))
    assert re.fullmatch(r"# created: 2026-03-01T14:30:05(Z|[+-]\d\d:\d\d)", naive.splitlines()[0])


def test_our_key_file_satisfies_age_keygen(
    identity: Identity, identity_file: Path, public_key_of: Callable[[Path], str]
) -> None:
    assert public_key_of(identity_file) == str(identity.recipient)


def test_age_keygen_files_load(age_keygen: Callable[[], Path], public_key_of: Callable[[Path], str]) -> None:
    path = age_keygen()
    (identity,) = load_identities(path)
    expected = public_key_of(path)
    assert str(identity.recipient) == expected
    public_line = next(line for line in path.read_text().splitlines() if "public key" in line)
    assert public_line.endswith(expected)


def test_identity_file_with_several_keys_and_comments(tmp_path: Path) -> None:
    first, second = Identity.generate(), Identity.generate()
    path = tmp_path / "keys.txt"
    path.write_text(f"# two keys\n\n{first}\n   \n# another\n{second}\n")
    assert load_identities(path) == [first, second]


def test_identity_file_errors_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "keys.txt"
    path.write_text(f"# comment\n{Identity.generate()}\nAGE-SECRET-KEY-1NOTAKEY\n")
    with pytest.raises(KeyFormatError, match=rf"{re.escape(str(path))}: line 3: "):
        load_identities(path)
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing here\n")
    with pytest.raises(KeyFormatError, match="no identities"):
        load_identities(empty)


def test_load_recipients_from_path_text_and_lines(tmp_path: Path) -> None:
    a, b = Identity.generate().recipient, Identity.generate().recipient
    text = f"# team\n{a}\n\n  {b}  \n"
    path = tmp_path / "recipients.txt"
    path.write_text(text)
    assert load_recipients(path) == [a, b]
    assert load_recipients(text) == [a, b]
    assert load_recipients(text.splitlines()) == [a, b]


def test_load_recipients_errors(tmp_path: Path) -> None:
    good = Identity.generate().recipient
    with pytest.raises(KeyFormatError, match=r"line 2: not an age X25519 recipient: 'age1abc'"):
        load_recipients([str(good), "age1abc"])
    assert load_recipients(["# only a comment", ""]) == []
    path = tmp_path / "r.txt"
    path.write_text("nonsense\n")
    with pytest.raises(KeyFormatError, match=re.escape(str(path))):
        load_recipients(path)
