"""``_salvage.load_each``: the values of a batch pickle that does not load as a whole.

Checked against ``pickle.loads`` on random batches (seeded): nested containers,
shared references, classes pickled by reference and by value (cloudpickle),
with values that cannot be rebuilt at random places.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import pickle
import random
from typing import Any

import cloudpickle
import pytest

from minipool._salvage import load_each

Pair = collections.namedtuple("Pair", "left right")


class Box:
    def __init__(self, value: Any) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return type(other) is Box and other.value == self.value

    def __hash__(self) -> int:
        return 0


def _refuse() -> None:
    raise ValueError("refused to rebuild")


class Unbuildable:
    """Pickles; raises when it is unpickled."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_refuse, ())


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kinds = 12 if depth < 3 else 6
    kind = rng.randrange(kinds)
    if kind == 0:
        return rng.randrange(-(10**12), 10**12)
    if kind == 1:
        return str(rng.random())
    if kind == 2:
        return rng.random()
    if kind == 3:
        return None
    if kind == 4:
        return b"\x93" * rng.randrange(300)  # the STACK_GLOBAL opcode's byte, as data
    if kind == 5:
        return datetime.date(2020, 1, 1) + datetime.timedelta(days=rng.randrange(100))
    if kind == 6:
        return tuple(_random_value(rng, depth + 1) for _ in range(rng.randrange(6)))
    if kind == 7:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == 8:
        return {str(n): _random_value(rng, depth + 1) for n in range(rng.randrange(4))}
    if kind == 9:
        return Box(_random_value(rng, depth + 1))
    if kind == 10:
        return Pair(_random_value(rng, depth + 1), decimal.Decimal("1.5"))
    return frozenset({1, 2, rng.randrange(9)})


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloudpickle"])
def test_each_value_that_loads_is_the_one_loads_gives(dumps: Any) -> None:
    """Random batches with unbuildable values among them: exactly those fail, every other
    value equals what it was, and values shared between jobs stay one object."""
    rng = random.Random(15)
    for _ in range(30):
        count = rng.randrange(2, 2500)  # APPENDS batches of 1,000, and a shorter last one
        values = [_random_value(rng) for _ in range(count)]
        shared = Box("shared")
        for _ in range(rng.randrange(4)):
            values[rng.randrange(count)] = shared
        unbuildable = set(rng.sample(range(count), rng.randrange(4)))
        sent = [Unbuildable() if n in unbuildable else v for n, v in enumerate(values)]
        got, errors = load_each(dumps(sent, protocol=5), count)
        assert set(errors) == unbuildable
        assert all(got[n] == values[n] for n in range(count) if n not in unbuildable)
        copies = [got[n] for n in range(count) if values[n] is shared and n not in unbuildable]
        assert all(copy is copies[0] for copy in copies)


def test_a_value_that_refers_to_a_failed_one_fails_too() -> None:
    """A later value holding the object that failed never loads with something else there."""
    unbuildable = Unbuildable()
    values = [1, unbuildable, (unbuildable,), "x", [2, unbuildable], 3]
    got, errors = load_each(pickle.dumps(values, protocol=5), len(values))
    assert sorted(errors) == [1, 2, 4]
    assert str(errors[1]) == "refused to rebuild"
    assert "refers to a value of another job" in str(errors[2])
    assert [got[0], got[3], got[5]] == [1, "x", 3]


def test_a_pickle_that_is_not_a_list_of_that_many_values_is_refused() -> None:
    """What cannot be cut into ``count`` values raises ValueError; nothing is made up."""
    with pytest.raises(ValueError, match="has 3"):
        load_each(pickle.dumps([1, 2, 3], protocol=5), 4)
    with pytest.raises(ValueError, match="has 0"):
        load_each(pickle.dumps({"a": 1}, protocol=5), 1)


class UnbuildableBuffer:
    """Pickles with an out-of-band buffer; raises when it is unpickled."""

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        return (_refuse_buffer, (pickle.PickleBuffer(b"u" * 64),))


def _refuse_buffer(buffer: Any) -> None:
    raise ValueError("refused to rebuild")


def test_each_value_takes_its_own_out_of_band_buffers() -> None:
    """A batch pickled with its buffers out of band (as large ones travel through shared
    memory): a value that fails, buffers and all, leaves every other value its own."""
    values = [
        pickle.PickleBuffer(b"a" * 64),
        UnbuildableBuffer(),
        [pickle.PickleBuffer(b"b" * 64), pickle.PickleBuffer(b"c" * 64)],
        "plain",
        pickle.PickleBuffer(b"d" * 64),
    ]
    buffers: list[pickle.PickleBuffer] = []
    blob = pickle.dumps(values, protocol=5, buffer_callback=buffers.append)
    assert len(buffers) == 5  # every buffer out of band
    views = [buffer.raw() for buffer in buffers]
    got, errors = load_each(blob, len(values), views)
    assert list(errors) == [1]
    assert bytes(got[0]) == b"a" * 64
    assert [bytes(part) for part in got[2]] == [b"b" * 64, b"c" * 64]
    assert got[3] == "plain"
    assert bytes(got[4]) == b"d" * 64
