"""The ROI finder: proposes ROIs for views that come without a mask.

The paper routes each view by whether a radiologist drew an ROI; a new study
has none.  The finder learns the dataset's own annotations (manifest masks,
VinDr finding boxes, CDD-CESM drawn regions) on the training split, and per
image gives an ROI-presence probability, the stored threshold that turns it
into "ROI / no ROI" for routing, and boxes in the image's own pixels.

Why a small U-Net (``segmentation-models-pytorch`` 0.6, ``Unet`` with timm's
``resnet10t`` encoder, four stages, plus smp's auxiliary classification head):

* **Measured, 2-core CPU container, 2026-12-01**, one thread, batch 16 at
  96 px, forward + backward + AdamW step (``/tmp/roif/bench.py`` style): U-Net
  (1.6 M parameters) 27 ms/image, FPN with the same encoder 23 ms/image,
  torchvision's FCOS-ResNet50-FPN (32 M parameters) 141 ms/image.  FCOS would
  take five times the finder's 3-minute budget, and its presence answer would
  be a threshold on box scores of a detector trained with a few dozen boxes.
* **U-Net over FPN**: FPN predicts at a quarter of the input's resolution
  (24 × 24 at 96 px), a few cells per lesion; the U-Net's full-resolution map
  keeps boxes of small findings (VinDr calcification boxes) at their size for
  15 % more time.
* **Presence** is the logit of whichever of the head and the map's peak has
  the higher AUC on the finder's validation carve (stored as
  ``presence_source`` with both AUCs; a tie, or no carve, gives the map),
  Platt-scaled on that carve (``presence_calibration``) so that the served
  probability and its threshold (fitted on that carve too) are readable
  numbers, not 99.999 % against 99.9991 %: the test split chooses nothing.

The modules: :mod:`~core.roifinder.model` (the network),
:mod:`~core.roifinder.geometry` (input / crop / full-frame coordinates, boxes,
IoU), :mod:`~core.roifinder.data` (inputs, masks, the carve),
:mod:`~core.roifinder.train` (the loop), :mod:`~core.roifinder.infer`
(presence + boxes), :mod:`~core.roifinder.store` (the run folder's
``roi_model/``), :mod:`~core.roifinder.proposals` (the per-image table the
evaluation reads).  Callers import from these modules: the package itself
exports nothing, so a torch-free one (geometry) stays torch-free.
"""
