"""Named sizes for config dataclasses: ``paper()`` and ``tiny()``.

Every config of the course comes in two sizes that differ only in numbers: ``paper`` (the
paper's sizes and settings, for a GPU: the class defaults) and ``tiny`` (a laptop CPU: the
class's ``TINY`` values over the defaults). A config gets both by inheriting
:class:`Presets` and listing its tiny values once::

    @dataclass(frozen=True)
    class SyncNetConfig(Presets):
        TINY: ClassVar[dict] = dict(image_size=64, embed_dim=64)
        image_size: int = 112
        embed_dim: int = 512

    SyncNetConfig.paper()               # the defaults
    SyncNetConfig.tiny(embed_dim=32)    # TINY, then the overrides
"""

from __future__ import annotations

from typing import ClassVar


class Presets:
    """Mixin of config dataclasses: :meth:`paper` and :meth:`tiny` (see the module docstring)."""

    TINY: ClassVar[dict] = {}

    @classmethod
    def paper(cls, **overrides):
        """The paper's sizes and settings (the class defaults), with ``overrides``."""
        return cls(**overrides)

    @classmethod
    def tiny(cls, **overrides):
        """The CPU-sized preset: the class's ``TINY`` values, then ``overrides``."""
        return cls(**{**cls.TINY, **overrides})
