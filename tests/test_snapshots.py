"""Snapshot files and the journal on their own: every way a file can be torn or altered is caught,
and recovery picks the newest file that checks out, keeping what it cannot use."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from registry.chain import journal, snapshots
from registry.chain.snapshots import DamagedSnapshot, StateDamagedError

STATE = {"block": {"number": "0x3"}, "accounts": {"0x" + "11" * 20: {"nonce": 1}}, "blocks": [], "transactions": []}


def _payload(state: dict | None = None) -> bytes:
    return gzip.compress(json.dumps(state or STATE).encode())


def test_write_then_load_round_trips(tmp_path: Path) -> None:
    written = snapshots.write(tmp_path, _payload(), block=3, instance="1:2", fingerprint="0xab")
    header, state = snapshots.load(tmp_path / snapshots.CURRENT)
    assert header is not None and header.block == 3 and header.sha256 == written.sha256
    assert json.loads(state) == STATE
    assert snapshots.read_header(tmp_path / snapshots.CURRENT).instance == "1:2"
    assert not (tmp_path / snapshots.PREVIOUS).exists()  # nothing to keep yet
    snapshots.write(tmp_path, _payload({**STATE, "marker": 2}), block=4, instance=None, fingerprint=None)
    assert snapshots.read_header(tmp_path / snapshots.PREVIOUS).sha256 == written.sha256
    assert sorted(p.name for p in tmp_path.iterdir()) == [snapshots.CURRENT, snapshots.PREVIOUS]


def test_a_torn_file_is_caught_at_every_length(tmp_path: Path) -> None:
    snapshots.write(tmp_path, _payload(), block=3, instance=None, fingerprint=None)
    whole = (tmp_path / snapshots.CURRENT).read_bytes()
    torn = tmp_path / "torn"
    step = max(1, len(whole) // 97)
    for cut in list(range(0, len(whole), step)) + [len(whole) - 1]:
        torn.write_bytes(whole[:cut])
        with pytest.raises(DamagedSnapshot):
            snapshots.load(torn.rename(tmp_path / snapshots.CURRENT))
        (tmp_path / snapshots.CURRENT).rename(torn)


@pytest.mark.parametrize("damage", ["flip-payload", "flip-header", "append", "not-ours", "bad-gzip", "no-accounts"])
def test_altered_files_are_caught(tmp_path: Path, damage: str) -> None:
    path = tmp_path / snapshots.CURRENT
    if damage == "bad-gzip":
        snapshots.write(tmp_path, b"\x1f\x8b" + b"x" * 40, block=1, instance=None, fingerprint=None)
    elif damage == "no-accounts":
        snapshots.write(tmp_path, _payload({"blocks": []}), block=1, instance=None, fingerprint=None)
    else:
        snapshots.write(tmp_path, _payload(), block=1, instance=None, fingerprint=None)
        data = bytearray(path.read_bytes())
        if damage == "flip-payload":
            data[-5] ^= 0x01
        elif damage == "flip-header":
            data[data.index(b'"block": 1') + 9] = ord("7")
        elif damage == "append":
            data += b"more"
        else:
            data = bytearray(json.dumps(STATE).encode())
        path.write_bytes(bytes(data))
    with pytest.raises(DamagedSnapshot):
        snapshots.load(path)


def test_recover_prefers_current_then_previous_then_legacy(tmp_path: Path) -> None:
    assert snapshots.recover(tmp_path).state_json is None  # a new chain
    (tmp_path / snapshots.LEGACY).write_text(json.dumps(STATE))
    legacy = snapshots.recover(tmp_path)
    assert legacy.legacy and legacy.source == tmp_path / snapshots.LEGACY and not legacy.notes
    snapshots.write(tmp_path, _payload(), block=5, instance=None, fingerprint=None)
    snapshots.write(tmp_path, _payload({**STATE, "v": 2}), block=9, instance=None, fingerprint=None)
    chosen = snapshots.recover(tmp_path)
    assert chosen.block == 9 and not chosen.notes and json.loads(chosen.state_json or b"")["v"] == 2
    current = tmp_path / snapshots.CURRENT
    current.write_bytes(current.read_bytes()[:-3])
    fallback = snapshots.recover(tmp_path)
    assert fallback.block == 5 and fallback.source == tmp_path / snapshots.PREVIOUS
    assert any("blocks 6..9" in note for note in fallback.notes)
    assert not current.exists() and len(list((tmp_path / "damaged").iterdir())) == 1


def test_recover_refuses_when_everything_is_damaged(tmp_path: Path) -> None:
    (tmp_path / snapshots.LEGACY).write_text('{"accounts": {"0x')  # what a kill mid-rewrite left
    with pytest.raises(StateDamagedError, match="refusing to start an empty chain") as info:
        snapshots.recover(tmp_path)
    assert info.value.exit_code == 16
    assert (tmp_path / snapshots.LEGACY).exists()  # refused, and nothing moved


def test_set_aside_never_overwrites(tmp_path: Path) -> None:
    for i in range(3):
        (tmp_path / "f").write_text(str(i))
        snapshots.set_aside(tmp_path / "f")
    assert sorted(p.read_text() for p in (tmp_path / "damaged").iterdir()) == ["0", "1", "2"]


def _entry(block: int, index: int = 0) -> journal.Entry:
    return journal.Entry(block=block, index=index, timestamp=1000 + block, tx_hash=f"0x{block:064x}",
                         raw="0x02f8", status=1)


def test_journal_round_trip_order_and_torn_tail(tmp_path: Path) -> None:
    for block in (3, 1, 2):
        journal.append(tmp_path, _entry(block))
    path = tmp_path / journal.JOURNAL
    with open(path, "ab") as handle:
        handle.write(_entry(4).to_line()[:30])  # an append that never returned: never acknowledged
    entries, problems = journal.read(tmp_path)
    assert [e.block for e in entries] == [1, 2, 3] and problems == []
    journal.rewrite(tmp_path, entries[1:])
    assert [e.block for e in journal.read(tmp_path)[0]] == [2, 3]


def test_journal_damage_in_the_middle_is_reported(tmp_path: Path) -> None:
    for block in (1, 2, 3):
        journal.append(tmp_path, _entry(block))
    path = tmp_path / journal.JOURNAL
    lines = path.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b'"status":1', b'"status":0')  # checksum no longer matches
    path.write_bytes(b"\n".join(lines))
    entries, problems = journal.read(tmp_path)
    assert [e.block for e in entries] == [1, 3] and len(problems) == 1 and "line 2" in problems[0]


def test_durable_head_stops_at_the_first_gap() -> None:
    entries = [_entry(5), _entry(6), _entry(6, 1), _entry(8)]
    assert journal.durable_head(entries, 4) == 6
    assert journal.durable_head(entries, 7) == 8
    assert journal.durable_head([], 7) == 7


def test_a_write_killed_after_keeping_the_previous_one_leaves_no_litter(tmp_path: Path) -> None:
    """Killed between the hard link and the rename: current and prev are one file; the next write
    must neither leave its link behind nor lose the current snapshot."""
    import os

    snapshots.write(tmp_path, _payload(), block=1, instance=None, fingerprint=None)
    os.link(tmp_path / snapshots.CURRENT, tmp_path / snapshots.PREVIOUS)  # what the killed writer left
    snapshots.write(tmp_path, _payload({**STATE, "v": 2}), block=2, instance=None, fingerprint=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == [snapshots.CURRENT, snapshots.PREVIOUS]
    assert snapshots.read_header(tmp_path / snapshots.PREVIOUS).block == 1
    assert snapshots.read_header(tmp_path / snapshots.CURRENT).block == 2
