"""The run folder: its layout and readers, atomic writes, locks, progress, and the
background jobs that write it. Every file a run keeps is written through here.
"""
