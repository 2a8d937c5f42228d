"""A reviewed study: its views and ROIs (case, study), how a call is worded (readout),
the calls and the routing sentence (report), what a download holds (export), and the
pictures drawn on the images (overlay, picture).
"""
