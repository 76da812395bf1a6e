"""The five speech-related facial action units (FACS) that drive the mouth.

=====  ======================  ============================================
AU     FACS name               what it does to the mouth
=====  ======================  ============================================
AU10   upper lip raiser        lifts the upper lip, shows the upper teeth
AU14   dimpler                 tightens the lip corners, pulls them inwards
AU20   lip stretcher           pulls the lip corners sideways
AU25   lips part               separates the lips
AU26   jaw drop                lowers the jaw, opens the mouth
=====  ======================  ============================================

Intensities follow OpenFace's convention: 0 (absent) to 5 (maximum).
"""

AUS = ("AU10", "AU14", "AU20", "AU25", "AU26")
"""AU names in the fixed order used everywhere (arrays of shape ``(..., 5)``)."""

OCCURRENCE_THRESHOLD = 1.0
"""An AU occurs in a frame when its 0-5 intensity reaches this value (FACS level 'A')."""
