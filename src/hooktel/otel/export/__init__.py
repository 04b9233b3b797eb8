"""OTLP/HTTP export off the request thread: `OTLPSpanProcessor` and what it runs.

`processor` is the span processor, `thread` the export thread that batches,
encodes and sends, `sender` the HTTP client with retries, `config` the
settings as the OpenTelemetry environment names them, `configurator` the
`hooktel_otlp` entry point, and `encoder` (C) / `encoder_py` (its twin) the
protobuf encoding.
"""
