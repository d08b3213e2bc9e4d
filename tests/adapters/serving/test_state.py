"""ServingState: a swap never disturbs requests holding the old set; draining is observable."""

from __future__ import annotations

import threading

import pytest

from lsat.adapters.serving.state import LoadedSet, NothingServing, ServingState


def _set(version: int) -> LoadedSet:
    return LoadedSet({"short": f"short-{version}"}, {"short": version}, alpha=0.0)


def test_nothing_serving_before_the_first_swap() -> None:
    with pytest.raises(NothingServing), ServingState().acquire():
        pass


def test_request_keeps_its_set_across_a_swap_and_drain_waits_for_it() -> None:
    state = ServingState()
    old, new = _set(1), _set(2)
    state.swap(old)
    held = threading.Event()
    release = threading.Event()
    seen: list[int] = []

    def request() -> None:
        with state.acquire() as serving:
            held.set()
            release.wait(5)
            seen.append(serving.versions["short"])

    thread = threading.Thread(target=request)
    thread.start()
    held.wait(5)
    assert state.swap(new) is old
    assert state.current is new
    assert state.in_flight(old) == 1
    assert state.wait_idle(old, timeout_s=0.05) is False
    release.set()
    assert state.wait_idle(old, timeout_s=5) is True
    thread.join()
    assert seen == [1]
    with state.acquire() as serving:
        assert serving.versions["short"] == 2


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (({"short": 1}, {"short": "x"}, 0.5), ({"short": 1}, {"short": "x"}, 0.5), True),
        (({"short": 1}, {"short": "x"}, 0.5), ({"short": 2}, {"short": "x"}, 0.5), False),
        (({"short": 1}, {"short": "x"}, 0.5), ({"short": 1}, {"short": "y"}, 0.5), False),
        (({"short": 1}, {"short": "x"}, 0.5), ({"short": 1}, {"short": "x"}, 0.4), False),
    ],
)
def test_key_identifies_published_content(a: tuple, b: tuple, same: bool) -> None:
    first = LoadedSet({"short": "n1"}, a[0], a[2], shas=a[1])
    second = LoadedSet({"short": "n2"}, b[0], b[2], shas=b[1])
    assert (first.key() == second.key()) is same


def test_a_name_shared_with_a_held_set_outlives_the_set_that_retired_it() -> None:
    state = ServingState()
    freed: list[str] = []
    a = LoadedSet({"long": "L1", "short": "S1"}, {"long": 1, "short": 1}, 0.5)
    b = LoadedSet({"long": "L1", "short": "S2"}, {"long": 1, "short": 2}, 0.5)
    c = LoadedSet({"long": "L2", "short": "S2"}, {"long": 2, "short": 2}, 0.5)
    state.swap(a)
    with state.acquire():  # a request holds A (L1, S1) throughout
        state.swap(b)
        assert state.retire(["S1"], freed.extend) == 1
        state.swap(c)
        assert state.retire(["L1"], freed.extend) == 2  # B is idle, but A still uses L1
        assert freed == [] and state.pending_free() == ("S1", "L1")
    assert sorted(freed) == ["L1", "S1"] and state.pending_free() == ()


def test_idle_retired_names_are_freed_at_once_and_a_failing_free_is_contained() -> None:
    state = ServingState()
    state.swap(_set(1))
    state.swap(_set(2))
    freed: list[str] = []
    assert state.retire(["short-1"], freed.extend) == 0 and freed == ["short-1"]

    def broken(names: list[str]) -> None:
        raise RuntimeError(f"cannot free {names}")

    state.swap(_set(3))
    with state.acquire():
        state.swap(_set(4))
        state.retire(["short-3"], broken)
    assert state.pending_free() == ()  # the request ended normally; the failure was logged
