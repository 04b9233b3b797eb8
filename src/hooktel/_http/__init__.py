"""What every HTTP hook point shares: the request's attributes and its lifecycle.

`request` turns a server's request into start attributes (`begin_http`),
`operation` enforces the per-request contract (start, at most one inject,
exactly one end or error), and `headers`, `traceparent` and `tracestate` are
the parsing they rely on. Standard library only.
"""
