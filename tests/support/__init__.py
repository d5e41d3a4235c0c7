"""Support shared by the tests: HTTP helpers."""
