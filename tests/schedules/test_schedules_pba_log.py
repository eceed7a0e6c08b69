"""The published PBA schedules give the same policy per epoch as PBA's own parser.

``reference_schedule`` is an independent, direct transcription of PBA's ``pba/utils.py``
(``parse_log`` then ``parse_log_schedule``) on the raw lines: per-epoch lists of 60 ints.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from autodata.schedules import PBAPolicy, PiecewiseSchedule, read_pba_log, schedule_from_pba_log


def reference_schedule(path: Path, epochs: int, multiplier: float = 1.0) -> list[list[int]]:
    raw = [ast.literal_eval(line) for line in path.read_text().splitlines() if line.strip()]
    for r in raw:
        for i in (4, 5):
            if isinstance(r[i], dict):
                r[i] = r[i]["hp_policy"]
    to_truncate = None
    for i in range(len(raw) - 1):
        if raw[i][0] != raw[i + 1][1]:
            to_truncate = i
    if to_truncate is not None:
        raw = raw[to_truncate + 1:]
    policy = [[raw[0][3], raw[0][4]]]
    for i in range(len(raw) - 1):
        policy.append([raw[i + 1][3] - raw[i][3], raw[i][5]])
    policy.append([epochs - raw[-1][3], raw[-1][5]])
    assert sum(p[0] for p in policy) == epochs
    schedule = []
    for num_iters, pol in policy:
        for _ in range(int(num_iters * multiplier)):
            schedule.append(pol)
    for _ in range(int(epochs * multiplier) - len(schedule)):
        schedule.append(policy[-1][1])
    return schedule


def levels_at(schedule: PiecewiseSchedule, epoch: int) -> list[int]:
    return list(schedule.policy_at(epoch).levels)


CASES = [
    # file, search epochs, training epochs, chosen epochs (segment edges included)
    ("rcifar10_16_wrn.txt", 200, 200, [0, 11, 12, 33, 34, 74, 75, 80, 81, 194, 195, 199]),
    ("rcifar10_16_wrn.txt", 200, 1800, [0, 107, 108, 665, 666, 674, 675, 1000, 1754, 1755, 1799]),
    ("rcifar10_16_wrn.txt", 200, 270, [0, 16, 17, 100, 263, 264, 268, 269]),  # multiplier 1.35 truncates
    ("rsvhn_16_wrn.txt", 160, 160, [0, 8, 9, 23, 24, 104, 107, 108, 158, 159]),
    ("rsvhn_16_wrn.txt", 160, 1800, [0, 100, 101, 1211, 1212, 1783, 1784, 1799]),
]


@pytest.mark.parametrize(("name", "search", "epochs", "chosen"), CASES)
def test_published_schedule_matches_pba_parser(pba_dir: Path, name: str, search: int, epochs: int,
                                               chosen: list[int]) -> None:
    path = pba_dir / name
    expected = reference_schedule(path, search, epochs / search)
    got = schedule_from_pba_log(path, epochs=None if epochs == search else epochs)
    assert got.num_epochs == epochs == len(expected)
    for e in chosen:
        assert levels_at(got, e) == expected[e], e
    assert [list(p.levels) for p in got.per_epoch()] == expected  # and every other epoch


def test_published_schedules_search_lengths_and_first_policy(pba_dir: Path) -> None:
    cifar = schedule_from_pba_log(pba_dir / "rcifar10_16_wrn.txt")
    svhn = schedule_from_pba_log(pba_dir / "rsvhn_16_wrn.txt")
    assert (cifar.num_epochs, svhn.num_epochs) == (200, 160)
    assert cifar.policy_at(0) == PBAPolicy.zeros()  # PBA's searches start from nothing
    assert len(cifar.segments) == 17 and len(svhn.segments) == 14
    assert schedule_from_pba_log(pba_dir / "rcifar10_16_wrn.txt", search_epochs=200) == cifar


def test_published_schedule_json_round_trip(pba_dir: Path, tmp_path: Path) -> None:
    s = schedule_from_pba_log(pba_dir / "rcifar10_16_wrn.txt", epochs=1800)
    path = tmp_path / "pba.json"
    s.save(path)
    assert path.stat().st_size < 200_000
    assert PiecewiseSchedule.load(path) == s
    assert '"op": "Rotate"' in path.read_text()


def _line(target: str, clone: str, t_ep: int, c_ep: int, old: list[int], new: list[int]) -> str:
    return repr([target, clone, t_ep, c_ep, old, new])


def test_leading_lines_outside_the_lineage_are_dropped_and_last_policy_pads(tmp_path: Path) -> None:
    a, b, c, d = ([v] * 60 for v in (1, 2, 3, 4))
    lines = [
        _line("x", "y", 3, 3, a, a),  # breaks the lineage: dropped, as PBA does
        _line("1", "0", 5, 4, b, c),
        _line("2", "1", 9, 10, c, d),  # clone epoch == search epochs: a last run of length 0
    ]
    path = tmp_path / "log.txt"
    path.write_text("\n".join(lines) + "\n")
    for epochs in (25, 10, 13):
        got = schedule_from_pba_log(path, epochs=epochs, search_epochs=10)
        expected = reference_schedule(path, 10, epochs / 10)
        assert [list(p.levels) for p in got.per_epoch()] == expected
    # at 13 epochs the runs get int(5.2) + int(7.8) + 0 = 12 epochs; the zero-length last run fills the 13th
    assert got.policy_at(11).levels == tuple(c) and got.policy_at(12).levels == tuple(d)


def test_dict_configs_are_read(tmp_path: Path) -> None:
    a, b = [0] * 60, [1] * 60
    path = tmp_path / "log.txt"
    path.write_text(repr(["1", "0", 2, 2, {"hp_policy": a}, {"hp_policy": b, "lr": 0.1}]) + "\n")
    s = schedule_from_pba_log(path, search_epochs=5)
    assert [p.levels[0] for p in s.per_epoch()] == [0, 0, 1, 1, 1]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"['1', '0', 2, 2, [0] * 60, [0] * 60]\n", "log.txt:1 must be a Python list literal"),
        (repr(["1", "0", 2]).encode(), "log.txt:1 must be a list of 6 fields"),
        (repr(["1", "0", 2, -1, [0] * 60, [0] * 60]).encode(), "log.txt:1: clone_epoch must be an int >= 0"),
        (repr(["1", "0", 2, 2, [0] * 59, [0] * 60]).encode(), "log.txt:1: old_policy: levels must be a sequence of 60"),
        (repr(["1", "0", 2, 2, [0] * 60, [0] * 59 + [10]]).encode(),
         "log.txt:1: new_policy: levels[59] (half 1, Contrast magnitude level) must be an int in [0, 9]"),
        (repr(["1", "0", 2, 2, [0] * 60, [11] + [0] * 59]).encode(), "levels[0] (half 0, Rotate probability level)"),
        (b"\xff\xfe", "log.txt must be UTF-8 text, but got the byte 0xff at offset 0"),
        (b"\n\n", "must have at least one PBT log line"),
    ],
)
def test_bad_logs_name_file_line_and_field(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "log.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=None) as info:
        schedule_from_pba_log(path, search_epochs=10)
    assert message in str(info.value)


def test_search_epochs_required_for_unknown_files_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    path.write_text(_line("1", "0", 5, 5, [0] * 60, [1] * 60) + "\n")
    with pytest.raises(ValueError, match="search_epochs must be given for .*log.txt"):
        schedule_from_pba_log(path)
    with pytest.raises(ValueError, match="search_epochs must be >= the last clone epoch 5"):
        schedule_from_pba_log(path, search_epochs=4)
    with pytest.raises(ValueError, match="num_epochs must be an int >= 1"):
        schedule_from_pba_log(path, epochs=0, search_epochs=10)
    assert len(read_pba_log(path)) == 1


def test_decreasing_clone_epochs_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    path.write_text(_line("1", "0", 5, 5, [0] * 60, [1] * 60) + "\n" + _line("2", "1", 4, 3, [1] * 60, [2] * 60))
    with pytest.raises(ValueError, match="clone epochs must not decrease, but got 5 then 3"):
        schedule_from_pba_log(path, search_epochs=10)
