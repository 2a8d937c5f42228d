"""The command line's number options: one factory, the same one-line usage error everywhere."""
from __future__ import annotations

import argparse
import re

import pytest

from core.cli.argtypes import NON_NEGATIVE_INT, POSITIVE_FLOAT, POSITIVE_INT, number


def test_bounds_are_inclusive_unless_above():
    assert (POSITIVE_INT("1"), NON_NEGATIVE_INT("0"), POSITIVE_FLOAT("1e-6")) == (1, 0, 1e-6)
    in_range = number(float, 0, 100, note=" (CLAHE off)")
    assert (in_range("0"), in_range("100")) == (0.0, 100.0)
    for parse, text, said in ((POSITIVE_INT, "0", "must be >= 1"),
                              (NON_NEGATIVE_INT, "-1", "must be >= 0"),
                              (POSITIVE_FLOAT, "0", "must be > 0"),
                              (in_range, "100.5", "must be between 0 (CLAHE off) and 100"),
                              (in_range, "-0.1", "must be between 0 (CLAHE off) and 100")):
        with pytest.raises(argparse.ArgumentTypeError, match=f"^{re.escape(said)}$"):
            parse(text)
    with pytest.raises(ValueError):
        POSITIVE_INT("1.5")  # argparse reports it as "invalid int value"
    assert POSITIVE_INT.__name__ == "int"


@pytest.mark.parametrize("argv, said", [
    (["train", "--dataset", "d", "--out", "o", "--lr", "0"], "argument --lr: must be > 0"),
    (["train", "--dataset", "d", "--out", "o", "--cv", "x"], "argument --cv: invalid int value: 'x'"),
    (["evaluate", "run", "--boot", "-1"], "argument --boot: must be >= 0"),
    (["preprocess", "f.png", "--out", "o.png", "--size", "4"], "argument --size: must be between 8"),
    (["preprocess", "f.png", "--out", "o.png", "--clahe-tiles", "65"],
     "argument --clahe-tiles: must be between 1 and 64"),
])
def test_bad_numbers_are_one_usage_line(argv, said, capsys):
    from core.__main__ import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and said in err and "Traceback" not in err
