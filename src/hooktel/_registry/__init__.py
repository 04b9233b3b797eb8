"""The registry: instruments attach and detach; servers ask it for hooks.

`instrument` defines what an instrument is, `hooks` keeps the attached ones and
hands servers one immutable snapshot of their hooks (or None), and `errors`
reports a failing hook without letting it reach the request.
"""
