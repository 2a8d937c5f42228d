"""Benchmarks: scripts that measure the hot paths and print one JSON object.

Run each as ``python -m benchmarks.<name> --json``; docs/performance.md records
the figures with the commands that produced them, their dates and the machine.
"""
