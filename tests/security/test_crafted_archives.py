"""Hostile ``.berth`` archives, through every entry point that reads one: each must be refused with one clear
line, and nothing may be written outside the destination (nor, for inspect/verify, anywhere).

Each case is an archive built byte by byte (see ``crafting``): links and link chains, absolute and ``..``
names, special files, directories, duplicates, headers and manifests that lie about sizes, gzip bombs,
members the manifest does not list, a huge manifest, and formats berth never writes.
"""

from __future__ import annotations

import copy
import hashlib
import os
import subprocess
import sys
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import berth
from berth import archive
from berth.cli import app
from berth.errors import BundleError
from berth.registry import Registry
from tests.security.crafting import ZEROS_64M_GZ, Entry, bomb, gz, manifest_bytes, tar

BERTH = Path(sys.executable).parent / "berth"
Payload = tuple[str, bytes]


@dataclass(frozen=True)
class Case:
    build: Callable[[dict[str, Any], Payload, Path], bytes]  # (manifest, payload, outside dir) -> archive bytes
    error: str  # a fragment of the one-line error


def listed(manifest: dict[str, Any], payload: Payload, *extra: Entry, first: list[Entry] | None = None) -> bytes:
    """The honest archive, with ``first`` entries before the payload and ``extra`` entries after it."""
    name, data = payload
    entries = [Entry("berth.json", manifest_bytes(manifest)), *(first or []), Entry(name, data), *extra]
    return gz(tar(entries))


def with_files(manifest: dict[str, Any], files: list[dict[str, Any]]) -> dict[str, Any]:
    changed = copy.deepcopy(manifest)
    changed["files"] = files
    return changed


def entry_for(path: str, data: bytes) -> dict[str, Any]:
    return {"path": path, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


CASES: dict[str, Case] = {
    "symlink-out-then-write-through": Case(
        lambda m, p, out: listed(m, p, first=[Entry(p[0], type=tarfile.SYMTYPE, linkname=str(out / "pwned"))]),
        "is a symbolic link"),
    "symlinked-directory": Case(
        lambda m, p, out: gz(tar([Entry("berth.json", manifest_bytes(with_files(m, [entry_for("sub/x.bin", b"x")]))),
                                  Entry("sub", type=tarfile.SYMTYPE, linkname=str(out)),
                                  Entry("sub/x.bin", b"x")])),
        "is a symbolic link"),
    "hard-link-to-outside-file": Case(
        lambda m, p, out: listed(m, p, first=[Entry(p[0], type=tarfile.LNKTYPE, linkname=str(out / "target"))]),
        "is a hard link"),
    "link-chain": Case(
        lambda m, p, out: listed(m, p, first=[Entry("a", type=tarfile.SYMTYPE, linkname="b"),
                                              Entry("b", type=tarfile.SYMTYPE, linkname="../../" + out.name),
                                              Entry("a/pwned", b"x")]),
        "is a symbolic link"),
    "absolute-name": Case(lambda m, p, out: listed(m, p, Entry(str(out / "pwned"), b"owned")),
                          "is not a file its manifest lists"),
    "dotdot-name": Case(lambda m, p, out: listed(m, p, Entry("../" + out.name + "/pwned", b"owned")),
                        "is not a file its manifest lists"),
    "dotdot-name-listed-in-manifest": Case(
        lambda m, p, out: gz(tar([Entry("berth.json", manifest_bytes(with_files(m, [entry_for("../pwned", b"x")]))),
                                  Entry("../pwned", b"x")])),
        "files[0].path: '../pwned'"),
    "absolute-name-listed-in-manifest": Case(
        lambda m, p, out: gz(tar([Entry("berth.json", manifest_bytes(with_files(m, [entry_for("/tmp/pwned", b"x")]))),
                                  Entry("/tmp/pwned", b"x")])),
        "is not a relative path"),
    "backslash-name-listed-in-manifest": Case(
        lambda m, p, out: gz(tar([Entry("berth.json", manifest_bytes(with_files(m, [entry_for("..\\pwned", b"x")]))),
                                  Entry("..\\pwned", b"x")])),
        "is not a relative path"),
    "fifo": Case(lambda m, p, out: listed(m, p, first=[Entry("pipe", type=tarfile.FIFOTYPE)]), "is a fifo"),
    "character-device": Case(lambda m, p, out: listed(m, p, first=[Entry("null", type=tarfile.CHRTYPE)]),
                             "is a character device"),
    "block-device": Case(lambda m, p, out: listed(m, p, first=[Entry("disk", type=tarfile.BLKTYPE)]),
                         "is a block device"),
    "directory": Case(lambda m, p, out: listed(m, p, first=[Entry("sub", type=tarfile.DIRTYPE)]), "is a directory"),
    "gnu-long-name": Case(
        lambda m, p, out: listed(m, p, first=[Entry("x" * 20, b"y" * 20, type=tarfile.GNUTYPE_LONGNAME)]),
        "GNU long name"),
    "duplicate-payload-differing": Case(
        lambda m, p, out: listed(m, p, Entry(p[0], bytes(len(p[1])))), "appears twice"),
    "duplicate-manifest": Case(
        lambda m, p, out: listed(m, p, Entry("berth.json", manifest_bytes(m))), "is not a file its manifest lists"),
    "duplicate-listed-in-manifest": Case(
        lambda m, p, out: listed(with_files(m, [*m["files"], *m["files"]]), p), "is listed twice"),
    "case-duplicate-listed-in-manifest": Case(
        lambda m, p, out: listed(with_files(m, [*m["files"], {**m["files"][0], "path": m["files"][0]["path"].upper()}]),
                                 p), "is listed twice"),
    "header-small-data-large": Case(  # the header says 10 bytes; the real payload follows
        lambda m, p, out: gz(tar([Entry("berth.json", manifest_bytes(m)), Entry(p[0], p[1], size=10)])),
        "is 10 bytes, its manifest says"),
    "header-right-data-longer": Case(  # a correct header, then more data than it says: garbage as a header
        lambda m, p, out: gz(tar([Entry("berth.json", manifest_bytes(m))], end=False)
                             + Entry(p[0], p[1] + b"\x01" * 4096, size=len(p[1]), pad=False).to_bytes()
                             + bytes(1024)),
        "non-zero padding after a member"),
    "manifest-says-smaller": Case(
        lambda m, p, out: listed(with_files(m, [{**m["files"][0], "size": 100}]), p),
        "its manifest says 100"),
    "manifest-and-header-say-smaller": Case(  # both lie consistently: the first 100 bytes do not hash right
        lambda m, p, out: gz(tar([Entry("berth.json", manifest_bytes(with_files(m, [{**m["files"][0], "size": 100}]))),
                                  Entry(p[0], p[1][:100])])),
        "does not match its manifest"),
    "bomb-header-claims-gibibytes": Case(  # 2 GiB of zeros behind a header that claims them
        lambda m, p, out: bomb(tar([Entry("berth.json", manifest_bytes(m))], end=False)
                               + Entry(p[0], size=2 << 30).header(), 2),
        "is 2147483648 bytes, its manifest says"),
    "bomb-unlisted-member": Case(
        lambda m, p, out: bomb(tar([Entry("berth.json", manifest_bytes(m)), Entry(p[0], p[1])], end=False)
                               + Entry("extra.bin", size=2 << 30).header(), 2),
        "'extra.bin' is not a file its manifest lists"),
    "bomb-manifest-member": Case(  # a manifest of 2 GiB
        lambda m, p, out: bomb(Entry("berth.json", size=2 << 30).header(), 2), "berth.json is 2147483648 bytes"),
    "bomb-over-the-size-limit": Case(  # manifest and header agree on 3 GiB: over BERTH_ARCHIVE_MAX_BYTES
        lambda m, p, out: bomb(tar([Entry("berth.json", manifest_bytes(with_files(m, [
            {"path": p[0], "sha256": "0" * 64, "size": 3 << 30}])))], end=False)
            + Entry(p[0], size=3 << 30).header(), 3),
        "BERTH_ARCHIVE_MAX_BYTES"),
    "unlisted-member": Case(lambda m, p, out: listed(m, p, Entry("extra.py", b"import os\n")),
                            "'extra.py' is not a file its manifest lists"),
    "listed-file-missing": Case(
        lambda m, p, out: gz(tar([Entry("berth.json", manifest_bytes(m))])), "lacks"),
    "manifest-not-first": Case(
        lambda m, p, out: gz(tar([Entry(p[0], p[1]), Entry("berth.json", manifest_bytes(m))])),
        "first member must be berth.json"),
    "manifest-not-json-object": Case(
        lambda m, p, out: gz(tar([Entry("berth.json", b"[1, 2, 3]")])), "must hold a JSON object"),
    "manifest-absurdly-nested": Case(
        lambda m, p, out: gz(tar([Entry("berth.json", b"[" * 100_000 + b"]" * 100_000)])), "nested too deeply"),
    "pax-unknown-record": Case(
        lambda m, p, out: listed(m, p, first=[Entry("z", b"", pax={"linkpath": "/etc/passwd"})]),
        "unsupported pax record 'linkpath'"),
    "pax-path-escape": Case(
        lambda m, p, out: listed(m, p, Entry("innocent", b"owned", pax={"path": "../pwned"})),
        "'../pwned' is not a file its manifest lists"),
    "not-gzip": Case(lambda m, p, out: tar([Entry("berth.json", manifest_bytes(m)), Entry(*p)]),
                     "not a gzip-compressed tar file"),
    "truncated": Case(lambda m, p, out: gz(tar([Entry("berth.json", manifest_bytes(m)), Entry(*p)])[:2000]),
                      "damaged or truncated"),
    "compressed-stream-cut": Case(lambda m, p, out: gz(tar([Entry("berth.json", manifest_bytes(m)), Entry(*p)]))[:900],
                                  "damaged or truncated"),
    "compressed-stream-corrupt": Case(  # the first deflate block claims the reserved block type 3
        lambda m, p, out: (lambda data: data[:10] + b"\x07" + data[11:])(
            gz(tar([Entry("berth.json", manifest_bytes(m)), Entry(*p)]))),
        "damaged or truncated"),
}


def snapshot(root: Path) -> dict[str, int]:
    """Every path under ``root`` (links not followed) and its size: what the test compares before and after."""
    found = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(directory) / name
            found[str(path.relative_to(root))] = path.lstat().st_size if not path.is_dir() else -1
    return found


@pytest.fixture
def scene(tmp_path: Path) -> tuple[Path, Path]:
    """``work/`` holds the archive and is where it is unpacked; ``outside/`` is what links and names aim at."""
    (tmp_path / "work").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "target").write_text("precious\n")
    return tmp_path / "work", outside


def crafted(case: str, scene: tuple[Path, Path], manifest_data: dict[str, Any], payload: Payload) -> Path:
    work, outside = scene
    path = work / "crafted.berth"
    path.write_bytes(CASES[case].build(manifest_data, payload, outside))
    return path


def one_line(message: str) -> None:
    assert "\n" not in message.strip() and "Traceback" not in message, message


@pytest.fixture(autouse=True)
def limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERTH_ARCHIVE_MAX_BYTES", str(1 << 30))  # the bombs claim 2-3 GiB


@pytest.mark.parametrize("case", CASES)
def test_berth_unpack_refuses(case: str, scene: tuple[Path, Path], manifest_data: dict[str, Any],
                              payload: Payload) -> None:
    """``berth unpack`` in process (the CLI's own error handling, as the console script runs it)."""
    path = crafted(case, scene, manifest_data, payload)
    before = snapshot(path.parents[1])
    result = CliRunner().invoke(app, ["unpack", str(path), "--output", str(path.parent / "out")])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: "), result.stderr
    one_line(result.stderr)
    assert CASES[case].error in result.stderr, result.stderr
    assert snapshot(path.parents[1]) == before  # nothing written anywhere, no staging directory left


@pytest.mark.parametrize("case", ["symlink-out-then-write-through", "bomb-header-claims-gibibytes",
                                  "manifest-absurdly-nested"])
def test_the_console_script_exits_1_with_one_line(case: str, scene: tuple[Path, Path],
                                                 manifest_data: dict[str, Any], payload: Payload) -> None:
    path = crafted(case, scene, manifest_data, payload)
    before = snapshot(path.parents[1])
    done = subprocess.run([str(BERTH), "unpack", str(path), "--output", str(path.parent / "out")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert done.stderr.startswith("error: "), done.stderr
    one_line(done.stderr)
    assert CASES[case].error in done.stderr, done.stderr
    assert snapshot(path.parents[1]) == before


@pytest.mark.parametrize("entry_point", ["load", "inspect", "verify"])
@pytest.mark.parametrize("case", CASES)
def test_library_entry_points_refuse(case: str, entry_point: str, scene: tuple[Path, Path],
                                     manifest_data: dict[str, Any], payload: Payload) -> None:
    path = crafted(case, scene, manifest_data, payload)
    before = snapshot(path.parents[1])
    with pytest.raises(BundleError) as caught:
        getattr(berth, entry_point)(path)
    one_line(caught.value.message)
    assert CASES[case].error in caught.value.message
    assert snapshot(path.parents[1]) == before


@pytest.mark.parametrize("case", ["symlink-out-then-write-through", "dotdot-name", "bomb-header-claims-gibibytes",
                                  "unlisted-member"])
def test_register_refuses(case: str, scene: tuple[Path, Path], manifest_data: dict[str, Any], payload: Payload,
                          tmp_path: Path) -> None:
    path = crafted(case, scene, manifest_data, payload)
    before = snapshot(path.parents[1])
    with Registry(f"sqlite:///{tmp_path / 'registry.db'}", str(tmp_path / "artifacts")) as registry, \
            pytest.raises(BundleError) as caught:
        registry.register(path, "iris")
    assert CASES[case].error in caught.value.message
    assert {k: v for k, v in snapshot(tmp_path).items() if not k.startswith(("registry.db", "artifacts"))} \
        == {k: v for k, v in before.items()}  # the registry's own files aside, nothing new


@pytest.mark.parametrize("case", ["bomb-header-claims-gibibytes", "bomb-unlisted-member", "bomb-manifest-member",
                                  "bomb-over-the-size-limit", "header-small-data-large"])
def test_nothing_past_the_recorded_sizes_is_written(case: str, scene: tuple[Path, Path],
                                                    manifest_data: dict[str, Any], payload: Payload,
                                                    tmp_path: Path) -> None:
    """Extracting into a directory the test keeps: after the refusal, at most the manifest and the recorded
    payload sizes are there (the bombs are refused at a header, before their data)."""
    path = crafted(case, scene, manifest_data, payload)
    assert path.stat().st_size < 4 << 20  # a few MB on disk...
    destination = tmp_path / "dest"
    destination.mkdir()
    with pytest.raises(BundleError):
        archive.read(path, destination)
    written = sum(f.stat().st_size for f in destination.rglob("*") if f.is_file())
    recorded = len(manifest_bytes(manifest_data)) + sum(f["size"] for f in manifest_data["files"])
    assert written <= recorded


def test_a_bomb_after_the_end_marker_is_never_read(scene: tuple[Path, Path], manifest_data: dict[str, Any],
                                                    payload: Payload, tmp_path: Path) -> None:
    """Zeros after the last listed member read as the end of the archive: the bundle is complete and checked;
    what follows is not decompressed, let alone written."""
    work, _ = scene
    path = work / "tail.berth"
    path.write_bytes(gz(tar([Entry("berth.json", manifest_bytes(manifest_data)), Entry(*payload)], end=False))
                     + ZEROS_64M_GZ * 32)
    berth.unpack(path, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(["berth.json", payload[0]])


def test_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, small_bundle: Path,
                                          tmp_path: Path) -> None:
    berth.pack(small_bundle, tmp_path / "ok.berth")
    monkeypatch.setenv("BERTH_ARCHIVE_MAX_FILES", "0")
    with pytest.raises(berth.UsageError, match="BERTH_ARCHIVE_MAX_FILES='0': expected a positive number"):
        berth.verify(tmp_path / "ok.berth")
    monkeypatch.setenv("BERTH_ARCHIVE_MAX_FILES", "1")
    monkeypatch.setenv("BERTH_ARCHIVE_MAX_BYTES", "100")
    with pytest.raises(BundleError, match="at most 100 .BERTH_ARCHIVE_MAX_BYTES."):
        berth.verify(tmp_path / "ok.berth")


def test_packing_writes_only_regular_listed_files_and_is_reproducible(small_bundle: Path, tmp_path: Path) -> None:
    (small_bundle / "notes.txt").write_text("not listed\n")
    try:
        berth.pack(small_bundle, tmp_path / "a.berth")
    finally:
        (small_bundle / "notes.txt").unlink()
    berth.pack(small_bundle, tmp_path / "b.berth")
    assert (tmp_path / "a.berth").read_bytes() == (tmp_path / "b.berth").read_bytes()
    with tarfile.open(tmp_path / "a.berth") as packed:
        members = packed.getmembers()
    assert [m.name for m in members] == ["berth.json", "model.skops"]
    assert all(m.isreg() and m.mode == 0o644 and m.mtime == 0 and m.uid == 0 and not m.pax_headers for m in members)


def test_archives_written_by_older_berth_still_read(small_bundle: Path, tmp_path: Path) -> None:
    """berth up to 0.1 packed with ``tarfile.add``: pax headers holding float mtimes. They still unpack."""
    old = tmp_path / "old.berth"
    with tarfile.open(old, "w:gz") as packed:
        packed.add(small_bundle / "berth.json", arcname="berth.json")
        packed.add(small_bundle / "model.skops", arcname="model.skops")
    assert berth.verify(old).name == "iris"
    assert berth.load(old).predict([[5.1, 3.5, 1.4, 0.2]]).tolist() == [0]


def test_no_code_extracts_with_tarfile() -> None:
    """The class of bug, not the instance: nothing in berth extracts with tarfile (its filters had bypasses)."""
    source = Path(berth.__file__).parent
    users = [str(path.relative_to(source)) for path in source.rglob("*.py")
             if "import tarfile" in path.read_text() or "from tarfile" in path.read_text()]
    assert users == ["archive.py"]
    code = (source / "archive.py").read_text()
    assert not any(call in code for call in ("extractall(", "extract(", "extractfile(", "getmembers(", ".next("))
    assert 'tarfile.open(fileobj=zipped, mode="w"' in code  # tarfile only writes
