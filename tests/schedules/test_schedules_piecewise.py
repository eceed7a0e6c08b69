"""BaseSchedule, ConstantSchedule and PiecewiseSchedule (policy_at, stretch, JSON files)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from autodata.augment import Policy
from autodata.schedules import BaseSchedule, ConstantSchedule, PBAPolicy, PiecewiseSchedule, Segment, stretch_runs

A = PBAPolicy.zeros()
B = PBAPolicy((10, 9) * 30)


def test_constant_schedule_is_the_null_object() -> None:
    s = ConstantSchedule(A)
    assert isinstance(s, BaseSchedule) and s.num_epochs is None
    assert s.policy_at(0) is A and s.policy_at(10**6) is A
    bounded = ConstantSchedule(A, num_epochs=3)
    assert bounded.per_epoch() == [A, A, A]
    with pytest.raises(ValueError, match="epoch must be >= 0 and < num_epochs = 3, but got 3"):
        bounded.policy_at(3)
    with pytest.raises(ValueError, match="epoch must be >= 0, but got -1"):
        s.policy_at(-1)
    with pytest.raises(TypeError, match="epoch must be an int"):
        s.policy_at(1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_epochs must be an int to list every epoch, but got None"):
        s.per_epoch()


def test_piecewise_policy_at_and_bounds() -> None:
    s = PiecewiseSchedule([Segment(0, 2, A), Segment(2, 5, B)])
    assert s.num_epochs == 5 and s.per_epoch() == [A, A, B, B, B]
    with pytest.raises(ValueError, match="< num_epochs = 5, but got 5"):
        s.policy_at(5)


@pytest.mark.parametrize(
    ("segments", "message"),
    [
        ([Segment(1, 2, A)], r"segments\[0\].start must be 0 \(the first segment starts at epoch 0\), but got 1"),
        ([Segment(0, 2, A), Segment(3, 4, B)], r"segments\[1\].start must be 2 \(the previous segment's stop: no gap"),
        ([Segment(0, 3, A), Segment(2, 4, B)], r"segments\[1\].start must be 3 .* but got 2"),
        ([], "segments must be a non-empty sequence"),
    ],
)
def test_gaps_and_overlaps_are_refused(segments: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PiecewiseSchedule(segments)


def test_segment_checks() -> None:
    with pytest.raises(ValueError, match="stop must be > start = 2, but got 2"):
        Segment(2, 2, A)
    with pytest.raises(ValueError, match="start must be >= 0"):
        Segment(-1, 2, A)


def test_from_per_epoch_merges_and_stretch_follows_pba() -> None:
    s = PiecewiseSchedule.from_per_epoch([A, A, B, B, B, A])
    assert [(g.start, g.stop) for g in s.segments] == [(0, 2), (2, 5), (5, 6)]
    # PBA: each run gets int(length * multiplier) epochs, the last policy fills the rest
    assert [(g.start, g.stop) for g in s.stretched(9).segments] == [(0, 3), (3, 7), (7, 9)]
    assert s.stretched(6) == s
    assert [g.policy for g in stretch_runs([(1, "a"), (1, "b"), (1, "c")], 2)] == ["c"]  # int(2/3) = 0 twice


def test_json_round_trip_atomic_and_readable(tmp_path: Path) -> None:
    aa = Policy.identity()
    s = PiecewiseSchedule([Segment(0, 2, A), Segment(2, 5, B), Segment(5, 6, aa)], name="demo", description="d")
    path = tmp_path / "sub" / "s.json"
    s.save(path)
    assert PiecewiseSchedule.load(path) == s
    assert [p.name for p in tmp_path.joinpath("sub").iterdir()] == ["s.json"]  # no temporary left
    text = path.read_text()
    assert '{"op": "Posterize", "probability_level": 10, "magnitude_level": 9}' in text
    assert text.endswith("}\n")


def _bad(tmp_path: Path, edit) -> str:
    data = PiecewiseSchedule([Segment(0, 2, A), Segment(2, 5, B)]).to_dict()
    edit(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError) as info:
        PiecewiseSchedule.load(path)
    return str(info.value)


def _set(path: tuple, value: object):
    def edit(data: dict) -> None:
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return edit


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("segments", 1, "policy", "halves", 0, 2, "op"), "Blur",
         "bad.json: segments[1].policy.halves[0][2].op must be one of ['Rotate',"),
        (("segments", 1, "policy", "halves", 0, 2, "op"), "Rotate",
         "segments[1].policy.halves[0][2].op must be 'TranslateY' (PBA's op order), but got 'Rotate'."),
        (("segments", 0, "policy", "halves", 1, 0, "magnitude_level"), 10,
         "segments[0].policy.halves[1][0].magnitude_level must be an int in [0, 9], but got 10."),
        (("segments", 0, "policy", "halves", 1, 0, "probability_level"), -1,
         "probability_level must be an int in [0, 10], but got -1."),
        (("segments", 1, "start"), 3, "bad.json: segments[1].start must be 2 (the previous segment's stop: no gap"),
        (("segments", 1, "start"), 1, "segments[1].start must be 2"),
        (("segments", 1, "stop"), 2, "bad.json: segments[1].stop must be > start = 2, but got 2."),
        (("num_epochs",), 6, "bad.json: num_epochs must be 5 (the last segment's stop), but got 6."),
        (("format",), "x", "bad.json: format must be 'autodata.schedule', but got 'x'."),
        (("version",), 2, "bad.json: version must be 1, but got 2."),
        (("segments", 0, "policy", "format"), "y", "segments[0].policy.format must be 'autodata.pba_policy' or"),
        (("extra",), 1, "bad.json must have only the fields"),
        (("segments",), [], "bad.json: segments must be a non-empty JSON array"),
    ],
)
def test_bad_files_name_file_and_field(tmp_path: Path, path: tuple, value: object, message: str) -> None:
    assert message in _bad(tmp_path, _set(path, value))


def test_bad_bytes_and_json(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_bytes(b'{"format": "autodata.schedule", "name": "caf\xe9"}')
    with pytest.raises(ValueError, match=r"s.json must be UTF-8 encoded JSON, but byte 0xe9 at offset 44"):
        PiecewiseSchedule.load(path)
    path.write_text('{"format": 1,\n "format": 2}')
    with pytest.raises(ValueError, match=r"s.json must not repeat a field, but got \['format'\]"):
        PiecewiseSchedule.load(path)
    path.write_text('{"format": \n')
    with pytest.raises(ValueError, match="s.json must be valid JSON, but got an error at line 2"):
        PiecewiseSchedule.load(path)
    with pytest.raises(TypeError, match="policy must be a PBAPolicy or a Policy to be saved, but got str"):
        PiecewiseSchedule([Segment(0, 1, "x")]).to_json()


def test_a_stretch_that_does_not_divide_warns_with_its_rule() -> None:
    import warnings

    from autodata.schedules import stretch_runs

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(stretch_runs([(2, "a"), (3, "b")], 10)) == 2  # factor 2: no warning
    with pytest.warns(UserWarning, match=r"factor 0\.6.*1 segment\(s\) get none and are dropped"):
        segments = stretch_runs([(1, "a"), (4, "b")], 3)
    assert [(s.start, s.stop, s.policy) for s in segments] == [(0, 3, "b")]
    with pytest.warns(UserWarning, match="the last policy fills the epochs left"):
        stretch_runs([(2, "a"), (2, "b")], 7)
