"""A reviewed study read out: how a probability and its call are worded, the
case report a download carries, and the overlays drawn on the images.
"""
