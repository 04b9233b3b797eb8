"""SERVER spans from the HTTP hooks: the bridge between hook events and the SDK.

`server` turns hook events into spans, `fastpath` starts them without the
SDK's generic path where the configuration allows, `requestspan` is the span
type it makes, `parent` reads the caller's trace context, `borrowed` lends a
span to a framework's own telemetry, `handover` passes finished spans to a
processor that takes them whole.
"""
