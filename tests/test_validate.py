import math

import pytest

from ibnn import validate as v


def test_int_range_messages_name_parameter_value_range():
    assert v.check_int("epochs", 3, 1, 100) == 3
    with pytest.raises(ValueError, match=r"epochs=0 is out of range; accepted: integer in \[1, 100\]"):
        v.check_int("epochs", 0, 1, 100)
    with pytest.raises(ValueError, match=r"seed=1.5 must be an integer"):
        v.check_int("seed", 1.5)
    with pytest.raises(ValueError, match=r"seed=True must be an integer"):
        v.check_int("seed", True)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0, 0.0])
def test_positive_rejects(bad):
    with pytest.raises(ValueError, match=r"c_bl=.*\(0(\.0)?, inf\)"):
        v.check_positive("c_bl", bad)


def test_choice_and_bool():
    assert v.check_choice("split", "test", ["train", "test"]) == "test"
    with pytest.raises(ValueError, match=r"split='val'.*\['train', 'test'\]"):
        v.check_choice("split", "val", ["train", "test"])
    with pytest.raises(ValueError, match="must be a bool"):
        v.check_bool("flag", 1)
