"""The course diagram: every highlight key draws, unknown keys are refused by name."""

import matplotlib.pyplot as plt
import pytest

from coursekit.diagram import (
    ACCENT,
    BOXES,
    REFERENCES,
    STAGES,
    pipeline_diagram,
    references,
)


def _filled(fig) -> set[str]:
    """Names of the boxes drawn in the accent colour."""
    from matplotlib.colors import to_hex

    return {p.get_gid() for p in fig.axes[0].patches
            if p.get_gid() in BOXES and to_hex(p.get_facecolor()) == ACCENT.lower()}


@pytest.mark.parametrize("key", sorted(STAGES))
def test_every_highlight_key_lights_its_boxes(key):
    fig = pipeline_diagram(key)
    try:
        assert _filled(fig) == set(STAGES[key])
    finally:
        plt.close(fig)


def test_no_highlight_and_several_keys():
    fig = pipeline_diagram()
    assert _filled(fig) == set()
    plt.close(fig)
    fig = pipeline_diagram("mfcc, audio2au")
    assert _filled(fig) == set(STAGES["mfcc"]) | set(STAGES["audio2au"])
    plt.close(fig)


def test_draws_into_given_axes():
    fig, ax = plt.subplots()
    assert pipeline_diagram("tcsan", ax=ax) is fig
    assert len(ax.patches) > len(BOXES)  # the boxes and the arrows
    plt.close(fig)


def test_unknown_key_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown highlight 'decoder'.*audio2au.*warp"):
        pipeline_diagram("decoder")
    assert not plt.get_fignums()  # refused before drawing anything


def test_references_are_numbered_once_each():
    text = references("grid", "tcn")
    lines = text.splitlines()
    assert len(lines) == len(set(lines)) and lines[0].startswith("1. ")
    assert "arXiv:2204.12756" in text and "10.5281/zenodo.3625687" in text
    assert sum("Cooke" in line for line in lines) == 1
    with pytest.raises(ValueError, match="unknown keys"):
        references("nope")
    assert set(REFERENCES) >= {"tcsan", "bmvc", "journal", "yu2020", "grid"}
