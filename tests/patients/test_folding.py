import pytest

from esante.patients.folding import fold, prefix_upper_bound


@pytest.mark.parametrize(
    ("raw", "folded"),
    [
        ("Müller", "MULLER"),
        ("MULLER", "MULLER"),
        ("Gonçalves", "GONCALVES"),
        ("Weiß", "WEISS"),
        ("Dupont-Martin", "DUPONT MARTIN"),
        ("D'Angelo", "D ANGELO"),
        ("  da   Silva ", "DA SILVA"),
        ("Conceição", "CONCEICAO"),
    ],
)
def test_fold(raw: str, folded: str) -> None:
    assert fold(raw) == folded


def test_prefix_upper_bound() -> None:
    assert prefix_upper_bound("DUP") == "DUQ"
    assert "DUPONT" < prefix_upper_bound("DUP") <= "DUQ"
