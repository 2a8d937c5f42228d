"""Benchmarks: scripts that measure the hot paths and print one JSON object.

Run each as ``python -m benchmarks.<name> --json``; the README's
"Performance" section records the figures and the commands that produced them.
"""
