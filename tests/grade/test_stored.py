"""The key that signs OUT/results.json (labkit.grade.stored): made whole, this user's own,
never empty or short. A red team signed a forged record with an empty key file and had a
blank notebook graded 5/5 without running it."""

from __future__ import annotations

import os
import stat

from labkit.grade import stored


def test_the_key_is_made_whole_and_private(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path))
    key = stored._key(None)
    path = tmp_path / "grade-results.key"
    assert key is not None and len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stored._key(None) == key  # the same key next time
    assert [p.name for p in tmp_path.iterdir()] == ["grade-results.key"]  # no temporary left


def test_an_empty_short_or_shared_key_signs_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path))
    path = tmp_path / "grade-results.key"
    for text, mode in (("", 0o600), ("ab", 0o600), ("ab" * 32, 0o644)):
        path.write_text(text)
        os.chmod(path, mode)
        assert stored._key(None) is None, (text, oct(mode))
    path.unlink()
    path.symlink_to(tmp_path / "elsewhere")
    (tmp_path / "elsewhere").write_text("ab" * 32)
    os.chmod(tmp_path / "elsewhere", 0o600)
    assert stored._key(None) is None  # a link is not this user's key file
    assert stored._key(b"s" * 32) == b"s" * 32  # --secret: the run's own secret


def test_a_shard_records_mac_never_passes_for_a_results_record():
    from labkit.grade.secret import sign

    body, key = b'{"a": 1}', b"k" * 32
    assert stored._mac(key, body) != sign(key, body)
