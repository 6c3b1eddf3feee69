"""Units compared by meaning (issue 10): every spelling of one unit is the same unit; a
genuinely different unit never is."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from nidaan.kit.ucum import canonical, same_unit

THOUSANDS = ["10*3", "10^3", "x10^3", "x10³", "10³", "10e3", "10E3", "K", "thou", "\u00d710^3"]
MICROLITRE = ["uL", "µL", "μL", "ul", "cumm", "mm3", "(mm3)"]
MILLIONS = ["10*6", "10^6", "x10⁶", "10e6", "mill"]

#: Classes of spellings that mean one unit each; no two classes mean the same unit.
SAME: list[list[str]] = [
    [f"{t}/{v}" for t in THOUSANDS for v in MICROLITRE] + ["10^9/L", "10*9/L", "/nL"],
    [f"{m}/{v}" for m in MILLIONS for v in MICROLITRE] + ["10^12/L", "10*12/L", "/pL"],
    ["mg/dL", "mg/dl", "MG/DL", "mg/100mL", "g/L.10^-2"],
    ["g/dL", "g/dl", "g/100 mL"],
    ["g/L", "mg/mL"],
    ["mmol/L", "mmol/l", "umol/mL", "mol/m3"],
    ["umol/L", "µmol/L", "μmol/l", "nmol/mL"],
    ["uIU/mL", "µIU/mL", "mIU/L", "[iU]/m3"],
    ["mIU/mL", "IU/L"],
    ["U/L", "u/l", "mU/mL"],
    ["mEq/L", "meq/l"],
    ["fL", "fl", "um3"],
    ["pg", "PG"],
    ["%", " % "],
    ["mL/min/1.73 m2", "mL/min/1.73m²", "ml/min/1.73 m^2".replace("^", "")],
    ["mm/h", "mm/hr", "mm/1h"],
]

spelling_pair = st.sampled_from(range(len(SAME))).flatmap(
    lambda i: st.tuples(st.just(i), st.sampled_from(SAME[i]), st.sampled_from(SAME[i]))
)


@given(spelling_pair)
def test_every_spelling_of_a_unit_is_the_same_unit(pair: tuple[int, str, str]) -> None:
    _, a, b = pair
    assert canonical(a) is not None, a
    assert same_unit(a, b), (a, b)


@given(spelling_pair, spelling_pair)
def test_units_of_different_meaning_are_never_the_same(
    first: tuple[int, str, str], second: tuple[int, str, str]
) -> None:
    if first[0] != second[0]:
        assert not same_unit(first[1], second[2]), (first[1], second[2])


def test_the_issue_case_and_what_must_stay_refused() -> None:
    assert same_unit("10*3/uL", "10^3/uL")  # refused as a different unit on main
    assert not same_unit("10*3/uL", "10*6/uL")
    assert not same_unit("mg/dL", "mmol/L")  # needs the molar mass: a declared conversion
    assert not same_unit("mEq/L", "mmol/L")  # equal only for monovalent ions: declare it
    assert not same_unit("U/L", "IU/L")  # enzyme unit vs international unit: declare it
    assert not same_unit("cells/uL", "10^3/uL")


def test_an_unreadable_unit_compares_as_text() -> None:
    assert canonical("/hpf") is None
    assert same_unit("/hpf", "/HPF")
    assert not same_unit("/hpf", "/lpf")
