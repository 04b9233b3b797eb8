"""Test apps for the OpenTelemetry tests, one module per framework; see `harness`."""
