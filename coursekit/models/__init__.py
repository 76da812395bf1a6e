"""Networks of the talking-face generator (sizes in :mod:`coursekit.models.config`).

=================  ==============================================================
module             what
=================  ==============================================================
config             :class:`TalkerConfig` (``paper()``, ``tiny()``) and friends
audio2au           :class:`Audio2AU`: MFCC windows -> 5 speech-AU logits/features
encoders           :class:`IdentityEncoder`, :class:`AudioEncoder`
tcsan              :class:`TCSAN` and the other fusions of Table 3
decoder            :class:`ImageDecoder` with U-Net skips
au_classifier      :class:`AUClassifier` on the lower half of a face
talker             :class:`Talker`, the whole generator
=================  ==============================================================
"""

from .au_classifier import AUClassifier, lower_half
from .audio2au import Audio2AU, Audio2AUNet
from .config import FUSIONS, Audio2AUConfig, AUClassifierConfig, TalkerConfig
from .decoder import ImageDecoder
from .encoders import AudioEncoder, IdentityEncoder
from .talker import Talker, count_parameters
from .tcsan import (
    TCSAN,
    CoAttTCNFusion,
    ElementAttention,
    GRUFusion,
    MhAttTCNFusion,
    ResidualAttentionBlock,
    TCNFusion,
    make_fusion,
    receptive_field,
)

__all__ = [
    "AUClassifier", "AUClassifierConfig", "Audio2AU", "Audio2AUConfig", "Audio2AUNet",
    "AudioEncoder", "CoAttTCNFusion", "ElementAttention", "FUSIONS", "GRUFusion",
    "IdentityEncoder", "ImageDecoder", "MhAttTCNFusion", "ResidualAttentionBlock", "TCNFusion",
    "TCSAN", "Talker", "TalkerConfig", "count_parameters", "lower_half", "make_fusion",
    "receptive_field",
]
