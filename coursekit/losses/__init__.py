"""The training losses of the paper (section 3.2, eq. 5-11).

=========================  ===========================================================
loss                       what it does
=========================  ===========================================================
:func:`l1_reconstruction`  eq. 9: mean absolute pixel error, generated vs real frame
:func:`identity_loss`      eq. 10: the same on the **upper half** only, generated frame
                           vs the identity image (keeps eyes/brows/hair of the input)
:class:`PerceptualLoss`    eq. 8: L1 between VGG-19 feature maps (ImageNet weights)
:func:`weighted_bce`       eq. 5: AU occurrence BCE, weighted against class imbalance
:func:`weighted_dice`      eq. 6: weighted multi-label soft Dice (rare AUs still count)
:func:`au_loss`            eq. 7: ``weighted_bce + weighted_dice``
:class:`TalkerLoss`        eq. 11: ``1.5 rec + 1.5 id + 0.07 per + 0.02 au`` (paper)
=========================  ===========================================================

Shapes: frames ``(B, T, 3, H, W)`` (or ``(N, 3, H, W)``) in [-1, 1] as served by
:class:`coursekit.data.TalkingFaceDataset`; identity ``(B, 3, H, W)``; AU logits / targets
``(..., 5)`` in :data:`coursekit.au.AUS` order; frame masks ``(B, T)`` bool (True = real
frame, False = padding).

=============  ================================================================
module         what
=============  ================================================================
image          eq. 9-10 pixel losses and the frame masks the other losses use
au             eq. 5-7 AU losses and :func:`au_class_weights`
vgg            eq. 8 :class:`PerceptualLoss`, VGG-19 and its weights file
               (:func:`download_vgg19`, ``COURSEKIT_VGG19_WEIGHTS``, SHA-256 check)
talker         eq. 11 :class:`TalkerLoss`
temporal       :func:`temporal_loss` (Face2Vid: output vs flow-warped previous output)
diffusion      :func:`region_weighted_mse`, :func:`mask_losses` (diffusion renderer)
=============  ================================================================
"""

from .au import au_class_weights, au_loss, weighted_bce, weighted_dice
from .diffusion import mask_losses, region_weighted_mse
from .image import identity_loss, l1_reconstruction
from .talker import TalkerLoss, TalkerLossWeights
from .temporal import temporal_loss
from .vgg import (IMAGENET_MEAN, IMAGENET_STD, VGG19_CFG, VGG19_FILENAME, VGG19_LAYERS,
                  VGG19_SHA256, VGG19_URL, WEIGHTS_ENV, PerceptualLoss, VGG19Features,
                  download_vgg19, load_vgg19_weights, sha256_of, vgg19_shapes)

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "PerceptualLoss", "TalkerLoss", "TalkerLossWeights",
    "VGG19Features", "VGG19_CFG", "VGG19_FILENAME", "VGG19_LAYERS", "VGG19_SHA256",
    "VGG19_URL", "WEIGHTS_ENV", "au_class_weights", "au_loss", "download_vgg19",
    "identity_loss", "l1_reconstruction", "load_vgg19_weights", "mask_losses",
    "region_weighted_mse", "sha256_of", "temporal_loss", "vgg19_shapes", "weighted_bce",
    "weighted_dice",
]
