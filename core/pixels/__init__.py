"""The pixel path: a file in (DICOM or picture), the run's model input out.

Reading (``read``: ``sniff``, ``limits``, ``dicom``, ``voi``, ``dicom_render``,
``picture``, ``downscale``, ``image``), the breast crop (``crop``), views and
chest-wall side from tags, names and pixels (``views``, ``viewfind``), the
run's preprocessing spec (``spec``), the model input (``preprocess``) and its
cache (``cache``, ``pool``). Training, serving and the hanging display all
take their pixels from here, so they cannot disagree.
"""
