"""The registry under concurrency: attach/detach racing requests, ids, order, snapshots."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import hooktel
from hooktel import Instrument, InstrumentKind

from .helpers import Recorder, start

THREADS = 8


@pytest.fixture(autouse=True)
def fast_thread_switching() -> Iterator[None]:
    """Switch threads as often as possible, so races show up in a short run."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


def run_threads(targets: list[Callable[[], None]]) -> None:
    """Start all targets together; re-raise the first exception any of them raised."""
    barrier = threading.Barrier(len(targets))
    errors: list[BaseException] = []

    def wrap(target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                barrier.wait()
                target()
            except BaseException as exc:
                errors.append(exc)

        return run

    threads = [threading.Thread(target=wrap(t), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive(), "a thread hung"
    if errors:
        raise errors[0]


def noop(op_id: int, attrs: dict[str, Any]) -> None:
    pass


def churn(index: int, rounds: int) -> hooktel.InstrumentRef:
    """Attach and detach an instrument `rounds` times; leave one attached at the end."""
    for i in range(rounds):
        instrument = Instrument(
            kind=InstrumentKind.HTTP,
            name=f"churn-{index}",
            version=str(i),
            on_operation_start=noop,
            on_operation_end=noop,
            capture_request_headers=[f"x-churn-{index}"],
        )
        ref = hooktel.attach(instrument)
        assert ref.id in {info.id for info in hooktel.instruments()}
        assert hooktel.native_hooks() is not None  # our own instrument is attached
        assert hooktel.detach(ref) is True
        assert hooktel.detach(ref) is False
        assert ref.id not in {info.id for info in hooktel.instruments()}
    return hooktel.attach(
        Instrument(
            kind="http",
            name=f"final-{index}",
            version="1",
            on_operation_start=noop,
            capture_request_headers=[f"x-final-{index}"],
        )
    )


def test_attach_detach_while_requests_run(capsys: pytest.CaptureFixture[str]) -> None:
    churners = THREADS // 2
    done = threading.Event()
    seen_ops: list[int] = []
    kept: list[hooktel.InstrumentRef] = []
    finished: list[int] = []
    lock = threading.Lock()

    def churn_then_stop(index: int) -> Callable[[], None]:
        def run() -> None:
            try:
                ref = churn(index, rounds=300)
                with lock:
                    kept.append(ref)
            finally:
                with lock:
                    finished.append(index)
                    if len(finished) == churners:
                        done.set()

        return run

    def request() -> None:
        while not done.is_set():
            hooks = hooktel.native_hooks()
            if hooks is None:
                continue
            op_id = hooks.generate_id()
            seen_ops.append(op_id)
            hooks.notify_start(op_id, {"operation.id": op_id})
            assert hooks.notify_inject(op_id) == {}
            hooks.notify_end(op_id, {"operation.id": op_id})
            hooktel.is_enabled_for(InstrumentKind.HTTP)

    run_threads([churn_then_stop(i) for i in range(churners)] + [request] * (THREADS - churners))

    assert len(kept) == churners
    assert seen_ops, "the request threads never saw hooks"
    assert len(set(seen_ops)) == len(seen_ops)
    assert capsys.readouterr().err == ""  # no hook raised
    listed = hooktel.instruments()
    assert sorted(info.id for info in listed) == sorted(ref.id for ref in kept)
    assert sorted(info.name for info in listed) == [f"final-{i}" for i in range(churners)]
    hooks = hooktel.native_hooks()
    assert hooks is not None
    assert sorted(hooks.capture_request_headers) == [f"x-final-{i}" for i in range(churners)]
    for ref in kept:
        assert hooktel.detach(ref) is True
    assert hooktel.native_hooks() is None
    assert hooktel.instruments() == []


def test_concurrent_attach_keeps_every_instrument() -> None:
    per_thread = 100
    refs: list[list[hooktel.InstrumentRef]] = [[] for _ in range(THREADS)]

    def attach_many(index: int) -> Callable[[], None]:
        def run() -> None:
            for i in range(per_thread):
                refs[index].append(
                    hooktel.attach(
                        Instrument("http", f"t{index}-{i}", "1", on_operation_end=lambda o, a: None)
                    )
                )

        return run

    run_threads([attach_many(i) for i in range(THREADS)])
    ids = [ref.id for thread_refs in refs for ref in thread_refs]
    assert len(set(ids)) == THREADS * per_thread
    listed = hooktel.instruments()
    assert sorted(info.id for info in listed) == sorted(ids)
    # Registration order is the order attach() returned, which ids reflect.
    assert [info.id for info in listed] == sorted(ids)

    def detach_all(index: int) -> Callable[[], None]:
        def run() -> None:
            for ref in refs[index]:
                assert hooktel.detach(ref) is True

        return run

    run_threads([detach_all(i) for i in range(THREADS)])
    assert hooktel.instruments() == []
    assert hooktel.native_hooks() is None


def test_operation_ids_unique_positive_increasing_across_threads() -> None:
    Recorder("http").attach()
    Recorder("custom", kind=InstrumentKind.CUSTOM).attach()
    per_thread = 20_000
    results: list[list[int]] = [[] for _ in range(THREADS)]

    def draw(index: int) -> Callable[[], None]:
        def run() -> None:
            out = results[index]
            for i in range(per_thread):
                # Different snapshots and different kinds share one id sequence.
                kind = InstrumentKind.CUSTOM if i % 3 == 0 else InstrumentKind.HTTP
                hooks = hooktel.native_hooks(kind)
                assert hooks is not None
                out.append(hooks.generate_id())
                if i % 1000 == 0:
                    hooktel.detach(hooktel.attach(Recorder(f"tmp{index}").instrument))

        return run

    run_threads([draw(i) for i in range(THREADS)])
    every = [op_id for ids in results for op_id in ids]
    assert len(every) == THREADS * per_thread
    assert len(set(every)) == len(every), "an id was handed out twice"
    assert all(isinstance(op_id, int) and op_id > 0 for op_id in every)
    for ids in results:
        assert ids == sorted(ids) and len(set(ids)) == len(ids)  # increasing per thread
    hooks = hooktel.native_hooks()
    assert hooks is not None
    assert hooks.generate_id() > max(every)  # still increasing after the race


def test_ids_keep_increasing_across_detach_and_reattach() -> None:
    ref = Recorder().attach()
    hooks = hooktel.native_hooks()
    assert hooks is not None
    first = hooks.generate_id()
    hooktel.detach(ref)
    Recorder().attach()
    hooks = hooktel.native_hooks()
    assert hooks is not None
    assert hooks.generate_id() > first


def test_hooks_run_in_registration_order() -> None:
    log: list[Any] = []
    recorders = [Recorder(name, log=log, inject=lambda op_id: {}) for name in "abc"]
    refs = [rec.attach() for rec in recorders]
    hooks = hooktel.native_hooks()
    assert hooks is not None
    hooks.notify_start(1, {})
    hooks.notify_inject(1)
    hooks.notify_end(1, {})
    hooks.notify_error(2, {})
    assert [(event, name) for event, name, _, _ in log] == [
        (event, name) for event in ("start", "inject", "end", "error") for name in "abc"
    ]

    log.clear()
    hooktel.detach(refs[1])
    recorders[1].attach()  # re-attached: now last
    hooks = hooktel.native_hooks()
    assert hooks is not None
    hooks.notify_start(3, {})
    assert [name for _, name, _, _ in log] == ["a", "c", "b"]


def test_in_flight_operation_keeps_the_hooks_it_started_with() -> None:
    """Documented choice: a request keeps its snapshot; detach affects new requests."""
    early, late = Recorder("early"), Recorder("late")
    ref = early.attach()
    op = start()
    hooktel.detach(ref)
    late.attach()  # attached mid-request: not told about this operation
    assert op.inject() == {}
    op.end()
    assert [e[0] for e in early.log] == ["start", "inject", "end"]
    assert late.log == []

    # A new request sees only what is attached now.
    start().end()
    assert [e[0] for e in early.log] == ["start", "inject", "end"]
    assert [e[0] for e in late.log] == ["start", "end"]


def test_snapshot_kept_after_everything_is_detached() -> None:
    rec = Recorder()
    ref = rec.attach()
    hooks = hooktel.native_hooks()
    assert hooks is not None
    op_id = hooks.generate_id()
    hooks.notify_start(op_id, {})
    hooktel.detach(ref)
    assert hooktel.native_hooks() is None
    hooks.notify_error(op_id, {"error.type": "X"})
    assert [(e[0], e[2]) for e in rec.log] == [("start", op_id), ("error", op_id)]
