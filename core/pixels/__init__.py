"""The pixel path: a file in (DICOM or picture), the run's model input out.

Reading and 8-bit rendering (``dicom``), the breast crop (``crop``), views and
chest-wall side from tags, names and pixels (``views``, ``viewfind``), and the
run's preprocessing spec with its cache (``preprocess``). Training, serving and
the hanging display all take their pixels from here, so they cannot disagree.
"""
