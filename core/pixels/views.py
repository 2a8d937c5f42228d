"""A view (RCC, LCC, RMLO, LMLO) from DICOM tags, the file name and the pixels.

Each source may know only part of it (``ImageLaterality`` without
``ViewPosition`` is common in screening exports), so laterality and CC / MLO
are decided separately, each from the most trusted source that has it; a
disagreement is reported, never resolved silently.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import numpy as np

from core.errors import MammoError
from core.grid import VIEWS

ViewSource = Literal["dicom", "filename", "image", "manifest", "user"]
_FOUND_BY = ("dicom", "filename", "image")  # order of trust when nothing is given
_GIVES = {"dicom": "the DICOM tags give", "filename": "the file name says",
          "image": "the image suggests"}
_USING = {"dicom": "the tags", "filename": "the file name", "image": "the image"}

_LATERALITY_TOKENS = {"L": "L", "LEFT": "L", "LT": "L", "R": "R", "RIGHT": "R", "RT": "R"}
_POSITION_TOKENS = {"CC": "CC", "MLO": "MLO"}
_IDENTIFIER = re.compile(r"^[0-9a-f]{12,}$", re.IGNORECASE)  # hashes / UIDs: never a view


def _name_tokens(text: str) -> list[str]:
    """Words of a file name: split on punctuation, digit/letter and camel-case boundaries.

    Long hexadecimal chunks (VinDr image ids) are dropped: a "cc" inside a hash
    is not a view.
    """
    tokens: list[str] = []
    for chunk in re.split(r"[^0-9A-Za-z]+", text):
        if not chunk or _IDENTIFIER.match(chunk):
            continue
        for part in re.findall(r"[0-9]+|[A-Z]+(?![a-z])|[A-Z]?[a-z]+", chunk):
            tokens.append(part.upper())
    return tokens


def parse_view_name(text: str) -> tuple[str | None, str | None]:
    """``(laterality, position)`` named by a file name or a typed view, each or both None.

    Recognises ``RCC``, ``L_CC``, ``P2_L_DM_MLO``, ``left_mlo``, ``RightCC``
    (any case).  A part named twice with different values (``L_CC_R``) is
    ambiguous and gives None for that part.
    """
    lats: set[str] = set()
    poss: set[str] = set()
    for token in _name_tokens(str(text)):
        if token in VIEWS:
            lats.add(token[0])
            poss.add(token[1:])
        elif token in _LATERALITY_TOKENS:
            lats.add(_LATERALITY_TOKENS[token])
        elif token in _POSITION_TOKENS:
            poss.add(_POSITION_TOKENS[token])
    return (lats.pop() if len(lats) == 1 else None, poss.pop() if len(poss) == 1 else None)


def normalise_view(text: str) -> str:
    """A typed view (``rcc``, ``R-CC``, ``left mlo``) → one of :data:`VIEWS`, or MammoError."""
    lat, pos = parse_view_name(str(text))
    if lat is None or pos is None:
        raise MammoError(f"unknown view {text!r}; expected one of {', '.join(VIEWS)}")
    return lat + pos


def _merge_part(what: str, said: dict[str, str | None], warnings: list[str]
                ) -> tuple[str | None, str | None]:
    """``(value, source)`` of one part of the view: tags, then the file name, then the
    pixels; a disagreement is reported, never hidden."""
    found = [(src, said[src]) for src in _FOUND_BY if said.get(src)]
    if not found:
        return None, None
    src, value = found[0]
    for other, other_value in found[1:]:
        if other_value != value:
            warnings.append(f"{_GIVES[src]} {what} {value} but {_GIVES[other]} "
                            f"{other_value}; using {_USING[src]} ({value})")
    return value, src


def _image_view(pixels: np.ndarray | None, warnings: list[str]) -> tuple[str | None, str | None]:
    """``(laterality, position)`` the pixels show confidently (:mod:`core.pixels.viewfind`)."""
    if pixels is None:
        return None, None
    from core.pixels.viewfind import find_view

    try:
        guess = find_view(np.asarray(pixels))
    except ValueError as err:  # not a 2-D image: the reader reports that elsewhere
        warnings.append(f"view not read from the image: {err}")
        return None, None
    return guess.laterality, guess.position


@dataclass(frozen=True)
class ViewEvidence:
    """What the tags, the file name and the pixels say about one image's view.

    Kept per part (laterality, CC / MLO) with the most trusted source that
    said it, so that a view set by hand later can be checked against it
    without reading the image again.
    """

    laterality: str | None = None
    laterality_source: ViewSource | None = None
    position: str | None = None
    position_source: ViewSource | None = None

    @property
    def view(self) -> str | None:
        """The view when both parts are known, else None."""
        return self.laterality + self.position if self.laterality and self.position else None

    @property
    def source(self) -> ViewSource | None:
        """The least trusted source used for :attr:`view`."""
        if self.view is None:
            return None
        return max((self.laterality_source, self.position_source),  # type: ignore[arg-type]
                   key=_FOUND_BY.index)


def view_evidence(tag_laterality: str | None, tag_position: str | None, name: str,
                  warnings: list[str] | None = None, pixels: np.ndarray | None = None
                  ) -> ViewEvidence:
    """Each part of the view from DICOM tags, then the file name, then the pixels.

    ``ImageLaterality`` alone still gives the laterality.  ``pixels`` (the 8-bit
    rendering) are read by :func:`core.pixels.viewfind.find_view`, which answers only
    when confident.  Disagreements between sources go to ``warnings``.
    """
    warnings = warnings if warnings is not None else []
    name_lat, name_pos = parse_view_name(name) if name else (None, None)
    image_lat, image_pos = _image_view(pixels, warnings)
    lat, lat_src = _merge_part("laterality", {"dicom": tag_laterality, "filename": name_lat,
                                              "image": image_lat}, warnings)
    pos, pos_src = _merge_part("view position", {"dicom": tag_position, "filename": name_pos,
                                                 "image": image_pos}, warnings)
    return ViewEvidence(lat, lat_src, pos, pos_src)  # type: ignore[arg-type]


def contradictions(chosen: str, evidence: ViewEvidence) -> list[str]:
    """Sentences for each part of a view set by hand that the file's evidence contradicts.

    A person may be correcting a wrong tag, so the chosen view wins; the
    contradiction is still said, beside that view.
    """
    chosen = normalise_view(chosen)
    out = []
    for what, value, src, mine in (
            ("laterality", evidence.laterality, evidence.laterality_source, chosen[0]),
            ("view position", evidence.position, evidence.position_source, chosen[1:])):
        if value and value != mine:
            out.append(f"view set to {chosen} although {_GIVES[src]} {what} {value}")
    return out


def combine_view(tag_laterality: str | None, tag_position: str | None, name: str,
                 given: str | None = None, given_source: ViewSource = "manifest",
                 warnings: list[str] | None = None, pixels: np.ndarray | None = None
                 ) -> tuple[str | None, ViewSource | None]:
    """Decide a view from a given value, DICOM tags, a file name and the pixels, in that
    order of trust (:func:`view_evidence`).

    The source reported is the least trusted one used.  A view given explicitly
    (manifest row, ``--view``, the UI) wins: the person may be correcting a
    wrong tag; any contradiction is still warned about (:func:`contradictions`).
    """
    warnings = warnings if warnings is not None else []
    evidence = view_evidence(tag_laterality, tag_position, name, warnings, pixels)
    if given is not None:
        warnings.extend(contradictions(given, evidence))
        return normalise_view(given), given_source
    return evidence.view, evidence.source
