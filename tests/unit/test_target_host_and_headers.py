"""What any request-target, Host header or header name does to the start attributes.

Properties over hostile input, so that each class of input is covered, not only the
cases a server test names: `url.full` is always a well-formed URI that agrees with
`url.path` and `server.address`/`server.port`; a Host is used only when valid; secret
headers are redacted however their names are spelled.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from hypothesis import given
from hypothesis import strategies as st

from hooktel._http.headers import REDACTED, HeaderCapture, is_sensitive, unfold
from hooktel._http.request import MAX_HOST
from tests.unit.helpers import Recorder, start

SOCKET = ("10.0.0.1", 8080)
LATIN_1 = st.characters(min_codepoint=0x20, max_codepoint=0xFF)
HOST_CHARS = st.sampled_from(list("aZ09-._~!$&'()*+,;=%:[]@/?# \t\\\"<>{}|^`"))


def _start_attrs(**request: object) -> dict[str, object]:
    recorder = Recorder()
    with recorder.attach() as ref:
        hooks = __import__("hooktel").native_hooks()
        start(hooks, **request).end()  # type: ignore[arg-type]
        ref.detach()
    return recorder.attrs("start")


@given(host=st.text(HOST_CHARS, max_size=40) | st.text(LATIN_1, max_size=300))
def test_url_full_is_well_formed_whatever_the_host(host: str) -> None:
    attrs = _start_attrs(path="/a/b", query="q=1", headers=[("host", host)], server=SOCKET)
    url = urlsplit(str(attrs["url.full"]))
    assert url.scheme == "http"
    assert (url.hostname or "").lower() == str(attrs["server.address"]).lower().strip("[]")
    assert (url.port or 80) == attrs["server.port"]
    assert (url.path, url.query, url.fragment, url.username) == ("/a/b", "q=1", "", None)
    assert len(str(attrs["server.address"])) <= MAX_HOST
    if (attrs["server.address"], attrs["server.port"]) == SOCKET:
        assert url.netloc == "10.0.0.1:8080"
    else:  # the Host was taken, as sent
        assert url.netloc == host


@given(
    target=st.one_of(
        st.text(LATIN_1, max_size=30).map(lambda t: "/" + t.replace("?", "").replace("#", "")),
        st.builds(
            lambda scheme, authority, path: f"{scheme}://{authority}{path}",
            st.sampled_from(["http", "https", "HTTP"]),
            st.text(HOST_CHARS, max_size=20).map(lambda a: a.replace("/", "")),
            st.sampled_from(["", "/", "/x/y"]),
        ),
        st.just("*"),
    )
)
def test_url_full_follows_the_target_form(target: str) -> None:
    attrs = _start_attrs(
        method="OPTIONS", path=target, headers=[("host", "example.com")], server=SOCKET
    )
    url = urlsplit(str(attrs["url.full"]))
    assert url.scheme in ("http", "https")
    assert url.username is None
    if target == "*":
        assert (attrs["url.full"], attrs["url.path"]) == ("http://example.com", "*")
    else:
        assert url.path == attrs["url.path"]
        assert "://" not in url.path


@given(
    host=st.text(LATIN_1, min_size=1, max_size=30).filter(lambda h: not h.startswith("/")),
    port=st.integers(-5, 70000),
)
def test_connect_target_is_its_authority(host: str, port: int) -> None:
    """An authority-form target (one that is not origin-form: no leading `/`)."""
    attrs = _start_attrs(method="CONNECT", path=f"{host}:{port}", headers=[], server=SOCKET)
    assert attrs["url.path"] == ""
    url = urlsplit(str(attrs["url.full"]))
    assert (url.path, url.query) == ("", "")
    assert (url.hostname or "").lower() == str(attrs["server.address"]).lower()


SECRET_NAMES = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    "x-csrf-token",
    "x-session-id",
    "my-secret",
    "x-auth-token",
    "db-password",
]


@given(
    name=st.sampled_from(SECRET_NAMES),
    spelling=st.lists(st.booleans(), min_size=30, max_size=30),
)
def test_secret_headers_are_redacted_however_spelled(name: str, spelling: list[bool]) -> None:
    """Case and `-`/`_` vary freely: a WSGI server reads one CGI key for all of them."""
    spelled = "".join(
        (c.upper() if flip else c) if c != "-" else ("_" if flip else "-")
        for c, flip in zip(name, spelling, strict=False)
    )
    assert is_sensitive(spelled)
    capture = HeaderCapture("http.request.header.", [spelled.lower()])
    found = capture.collect([(spelled.lower(), "s3cret")])
    assert found == {f"http.request.header.{spelled.lower()}": (REDACTED,)}


@given(st.text(st.sampled_from(list("ab \t\r\n")), max_size=30))
def test_unfolded_values_carry_no_line_break(value: str) -> None:
    unfolded = unfold(value)
    assert "\r" not in unfolded and "\n" not in unfolded
    if "\r" not in value and "\n" not in value:
        assert unfolded is value
