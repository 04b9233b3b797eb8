"""Helpers shared by the server tests: apps, the recording instrument, server launchers."""
