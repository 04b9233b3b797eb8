"""`attach()` validates once, naming the field; detach, refs and the registry views."""

from __future__ import annotations

import types
from typing import Any

import pytest

import hooktel
from hooktel import Instrument, InstrumentKind

from .helpers import Recorder


def noop(op_id: int, attrs: dict[str, Any]) -> None:
    pass


def make(**overrides: Any) -> Instrument:
    fields: dict[str, Any] = {
        "kind": InstrumentKind.HTTP,
        "name": "test",
        "version": "1.0",
        "on_operation_start": noop,
    }
    fields.update(overrides)
    return Instrument(**fields)


def assert_rejected(instrument: object, error: type[Exception], field: str) -> None:
    with pytest.raises(error) as info:
        hooktel.attach(instrument)
    assert field in str(info.value)
    assert hooktel.instruments() == []
    assert hooktel.native_hooks() is None


# --- kind ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (InstrumentKind.HTTP, InstrumentKind.HTTP),
        (InstrumentKind.CUSTOM, InstrumentKind.CUSTOM),
        (1, InstrumentKind.HTTP),
        (4, InstrumentKind.REDIS),
        ("http", InstrumentKind.HTTP),
        ("custom", InstrumentKind.CUSTOM),
        ("redis", InstrumentKind.REDIS),
    ],
)
def test_kind_as_enum_int_or_lowercase_name(kind: object, expected: InstrumentKind) -> None:
    ref = hooktel.attach(make(kind=kind))
    [info] = hooktel.instruments()
    assert info.id == ref.id
    assert info.kind is expected
    assert hooktel.native_hooks(expected) is not None


@pytest.mark.parametrize("kind", ["bogus", "HTTP", "Http", " http", "", 5, 99, -1])
def test_unknown_kind_is_a_value_error(kind: object) -> None:
    assert_rejected(make(kind=kind), ValueError, "kind")


@pytest.mark.parametrize("kind", [None, 1.0, True, b"http", [1]])
def test_kind_of_wrong_type_is_a_type_error(kind: object) -> None:
    assert_rejected(make(kind=kind), TypeError, "kind")


# --- name and version ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "x" * 257])
def test_name_empty_or_too_long(name: str) -> None:
    assert_rejected(make(name=name), ValueError, "name")


def test_name_of_256_characters_is_accepted() -> None:
    hooktel.attach(make(name="n" * 256))
    assert hooktel.instruments()[0].name == "n" * 256


@pytest.mark.parametrize("field", ["name", "version"])
def test_name_and_version_must_be_str(field: str) -> None:
    assert_rejected(make(**{field: 3}), TypeError, field)


def test_version_empty_or_too_long() -> None:
    assert_rejected(make(version=""), ValueError, "version")
    assert_rejected(make(version="1" * 257), ValueError, "version")


# --- hooks ---------------------------------------------------------------------------


def test_no_hook_at_all() -> None:
    with pytest.raises(ValueError) as info:
        hooktel.attach(make(on_operation_start=None))
    message = str(info.value)
    assert "hook" in message
    assert "on_operation_start" in message  # names the fields that would do
    assert hooktel.instruments() == []


@pytest.mark.parametrize(
    "hook",
    ["on_operation_start", "on_operation_inject", "on_operation_end", "on_operation_error"],
)
def test_hook_that_is_not_callable(hook: str) -> None:
    assert_rejected(make(**{hook: "not a function"}), TypeError, hook)


@pytest.mark.parametrize(
    "hook",
    ["on_operation_start", "on_operation_inject", "on_operation_end", "on_operation_error"],
)
def test_any_single_hook_is_enough(hook: str) -> None:
    fields: dict[str, Any] = {"on_operation_start": None, hook: lambda *args: None}
    ref = hooktel.attach(make(**fields))
    assert [i.id for i in hooktel.instruments()] == [ref.id]


# --- capture lists -------------------------------------------------------------------


@pytest.mark.parametrize("field", ["capture_request_headers", "capture_response_headers"])
def test_capture_list_over_50_names(field: str) -> None:
    names = [f"x-h{i}" for i in range(51)]
    assert_rejected(make(**{field: names}), ValueError, field)


@pytest.mark.parametrize("field", ["capture_request_headers", "capture_response_headers"])
def test_capture_list_of_50_names_is_accepted(field: str) -> None:
    names = [f"x-h{i}" for i in range(50)]
    hooktel.attach(make(**{field: names}))
    hooks = hooktel.native_hooks()
    assert hooks is not None
    assert getattr(hooks, field) == tuple(names)


@pytest.mark.parametrize(
    "header", ["", "x foo", "x:foo", "x-foo\r\n", "caf\u00e9", "a/b", "(x)", "x\x00", 7]
)
@pytest.mark.parametrize("field", ["capture_request_headers", "capture_response_headers"])
def test_capture_list_with_an_invalid_header_name(field: str, header: object) -> None:
    assert_rejected(make(**{field: ["x-ok", header]}), ValueError, field)


@pytest.mark.parametrize("value", ["x-foo", b"x-foo", 5])
def test_capture_list_must_be_a_sequence_not_a_string(value: object) -> None:
    assert_rejected(make(capture_request_headers=value), TypeError, "capture_request_headers")


def test_token_characters_are_accepted() -> None:
    odd = "!#$%&'*+-.^_`|~09azAZ"
    hooktel.attach(make(capture_request_headers=[odd]))
    hooks = hooktel.native_hooks()
    assert hooks is not None
    assert hooks.capture_request_headers == (odd.lower(),)


def test_capture_lists_are_lowercased_and_unioned_in_registration_order() -> None:
    first = hooktel.attach(
        make(
            name="a",
            capture_request_headers=["X-Foo", "x-bar", "X-BAR"],
            capture_response_headers=["Content-Type"],
        )
    )
    hooktel.attach(
        make(
            name="b",
            capture_request_headers=("x-FOO", "X-Baz"),
            capture_response_headers=["x-served-by", "content-type"],
        )
    )
    hooks = hooktel.native_hooks()
    assert hooks is not None
    assert hooks.capture_request_headers == ("x-foo", "x-bar", "x-baz")
    assert hooks.capture_response_headers == ("content-type", "x-served-by")

    hooktel.detach(first)
    hooks = hooktel.native_hooks()
    assert hooks is not None
    assert hooks.capture_request_headers == ("x-foo", "x-baz")
    assert hooks.capture_response_headers == ("x-served-by", "content-type")


def test_capture_lists_are_per_kind() -> None:
    hooktel.attach(make(kind="custom", capture_request_headers=["x-custom"]))
    hooktel.attach(make(capture_request_headers=["x-http"]))
    http, custom = hooktel.native_hooks("http"), hooktel.native_hooks("custom")
    assert http is not None and custom is not None
    assert http.capture_request_headers == ("x-http",)
    assert custom.capture_request_headers == ("x-custom",)


# --- duck-typed instruments ----------------------------------------------------------


def test_any_object_with_the_attributes_is_accepted() -> None:
    calls: list[int] = []
    duck = types.SimpleNamespace(
        kind="http",
        name="duck",
        version="2.0",
        on_operation_start=lambda op_id, attrs: calls.append(op_id),
    )
    ref = hooktel.attach(duck)
    assert hooktel.instruments() == [(ref.id, InstrumentKind.HTTP, "duck", "2.0")]
    hooks = hooktel.native_hooks()
    assert hooks is not None
    assert hooks.capture_request_headers == ()
    hooks.notify_start(7, {})
    hooks.notify_end(7, {})  # missing hooks are simply not called
    assert hooks.notify_inject(7) == {}
    assert calls == [7]


def test_class_instance_with_methods_is_accepted() -> None:
    class MyInstrument:
        kind = InstrumentKind.HTTP
        name = "mine"
        version = "0.1"
        capture_request_headers = ("X-Mine",)

        def __init__(self) -> None:
            self.ended: list[int] = []

        def on_operation_end(self, op_id: int, attrs: dict[str, Any]) -> None:
            self.ended.append(op_id)

    mine = MyInstrument()
    hooktel.attach(mine)
    hooks = hooktel.native_hooks()
    assert hooks is not None
    assert hooks.capture_request_headers == ("x-mine",)
    hooks.notify_end(3, {})
    assert mine.ended == [3]


@pytest.mark.parametrize("missing", ["kind", "name", "version"])
def test_object_missing_a_required_attribute(missing: str) -> None:
    fields = {"kind": "http", "name": "duck", "version": "1", "on_operation_start": noop}
    del fields[missing]
    assert_rejected(types.SimpleNamespace(**fields), TypeError, missing)


def test_duck_with_a_non_callable_hook() -> None:
    duck = types.SimpleNamespace(kind="http", name="d", version="1", on_operation_error=42)
    assert_rejected(duck, TypeError, "on_operation_error")


def test_attach_takes_a_snapshot_of_the_instrument() -> None:
    """Validated once: changing the instrument afterwards changes nothing attached."""
    calls: list[str] = []
    instrument = make(on_operation_start=lambda op_id, attrs: calls.append("original"))
    hooktel.attach(instrument)
    instrument.on_operation_start = lambda op_id, attrs: calls.append("replaced")
    instrument.name = ""
    hooks = hooktel.native_hooks()
    assert hooks is not None
    hooks.notify_start(1, {})
    assert calls == ["original"]
    assert hooktel.instruments()[0].name == "test"


# --- detach and InstrumentRef --------------------------------------------------------


def test_detach_is_idempotent() -> None:
    ref = hooktel.attach(make())
    assert isinstance(ref, hooktel.InstrumentRef)
    assert isinstance(ref.id, int) and ref.id > 0
    assert hooktel.detach(ref) is True
    assert hooktel.detach(ref) is False
    assert hooktel.detach(ref.id) is False
    assert hooktel.native_hooks() is None


def test_detach_by_id_and_by_ref_method() -> None:
    first, second = hooktel.attach(make()), hooktel.attach(make())
    assert hooktel.detach(first.id) is True
    assert second.detach() is True
    assert second.detach() is False
    assert hooktel.instruments() == []


def test_detach_unknown_id_is_false() -> None:
    ref = hooktel.attach(make())
    assert hooktel.detach(ref.id + 1000) is False
    assert hooktel.detach(0) is False
    assert [i.id for i in hooktel.instruments()] == [ref.id]


@pytest.mark.parametrize("bad", ["1", None, 1.0, True])
def test_detach_rejects_what_is_not_a_ref_or_id(bad: object) -> None:
    ref = hooktel.attach(make())
    with pytest.raises(TypeError):
        hooktel.detach(bad)  # type: ignore[arg-type]
    assert [i.id for i in hooktel.instruments()] == [ref.id]


def test_ids_are_never_reused() -> None:
    first = hooktel.attach(make())
    hooktel.detach(first)
    second = hooktel.attach(make())
    assert second.id > first.id


def test_ref_is_a_context_manager() -> None:
    with hooktel.attach(make()) as ref:
        assert isinstance(ref, hooktel.InstrumentRef)
        assert hooktel.is_enabled_for(InstrumentKind.HTTP)
        assert [i.id for i in hooktel.instruments()] == [ref.id]
    assert not hooktel.is_enabled_for(InstrumentKind.HTTP)
    assert hooktel.instruments() == []
    assert ref.detach() is False


def test_context_manager_detaches_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError), hooktel.attach(make()):
        assert hooktel.native_hooks() is not None
        raise RuntimeError("boom")
    assert hooktel.native_hooks() is None


def test_context_manager_tolerates_an_explicit_detach_inside() -> None:
    with hooktel.attach(make()) as ref:
        assert hooktel.detach(ref) is True
    assert hooktel.instruments() == []


# --- registry views ------------------------------------------------------------------


def test_instruments_lists_id_kind_name_version_in_registration_order() -> None:
    a = hooktel.attach(make(name="a", version="1"))
    b = hooktel.attach(make(name="b", version="2", kind="custom"))
    c = hooktel.attach(make(name="c", version="3", kind=4))
    listed = hooktel.instruments()
    assert listed == [
        (a.id, InstrumentKind.HTTP, "a", "1"),
        (b.id, InstrumentKind.CUSTOM, "b", "2"),
        (c.id, InstrumentKind.REDIS, "c", "3"),
    ]
    assert [(i.id, i.kind, i.name, i.version) for i in listed] == [tuple(i) for i in listed]
    hooktel.detach(b)
    assert [i.name for i in hooktel.instruments()] == ["a", "c"]


def test_instruments_returns_a_copy() -> None:
    hooktel.attach(make())
    hooktel.instruments().clear()
    assert len(hooktel.instruments()) == 1


def test_native_hooks_is_none_when_nothing_is_attached() -> None:
    for kind in InstrumentKind:
        assert hooktel.native_hooks(kind) is None
        assert hooktel.is_enabled_for(kind) is False
    assert hooktel.native_hooks() is None


def test_native_hooks_per_kind() -> None:
    ref = hooktel.attach(make(kind=InstrumentKind.CUSTOM))
    assert hooktel.native_hooks() is None  # the default kind is HTTP
    assert hooktel.native_hooks(InstrumentKind.HTTP) is None
    hooks = hooktel.native_hooks(InstrumentKind.CUSTOM)
    assert isinstance(hooks, hooktel.Hooks)
    assert hooktel.native_hooks("custom") is hooks
    assert hooktel.native_hooks(0) is hooks
    assert hooktel.is_enabled_for("custom") and not hooktel.is_enabled_for("http")

    hooktel.attach(make())
    assert isinstance(hooktel.native_hooks(), hooktel.Hooks)
    assert hooktel.native_hooks(InstrumentKind.CUSTOM) is not None
    hooktel.detach(ref)
    assert hooktel.native_hooks(InstrumentKind.CUSTOM) is None
    assert hooktel.is_enabled_for(InstrumentKind.HTTP)


@pytest.mark.parametrize(
    "kind", [None, "HTTP", "nope", 99, -1, 10**30, 1.0, True, b"http", [1], {}, object()]
)
def test_is_enabled_for_and_native_hooks_never_raise(kind: object) -> None:
    hooktel.attach(make())
    hooktel.attach(make(kind="custom"))
    assert hooktel.is_enabled_for(kind) is False  # type: ignore[arg-type]
    assert hooktel.native_hooks(kind) is None  # type: ignore[arg-type]


def test_hooks_are_rebuilt_on_attach_and_detach() -> None:
    rec = Recorder("first")
    rec.attach()
    before = hooktel.native_hooks()
    second = Recorder("second")
    ref = second.attach()
    after = hooktel.native_hooks()
    assert before is not None and after is not None and after is not before
    after.notify_start(1, {})
    assert [e[1] for e in rec.log + second.log] == ["first", "second"]
    hooktel.detach(ref)
    assert hooktel.native_hooks() not in (before, after)
