"""The hook-point contract, checked against real servers on 127.0.0.1."""
