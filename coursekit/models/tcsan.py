"""TCSAN: the dilated non-causal temporal convolutional self-attention network (section 3.1).

The fusion network turns the per-frame vectors ``f_k = f_id + f_a,k + f_au,k`` (concatenated)
into per-frame features ``f_t,k`` for the decoder, mixing information across time.

**Non-causal dilated convolutions** (Eq. 1). A causal TCN (Bai et al.) only looks at past
frames, but the mouth also anticipates the next sounds, so the kernel is centred on the frame:
``T(s) = sum_i F(i) X[s + d ((k-1)/2 - i)]``, as many frames before as after. Padding
``d (k-1)/2`` frames on each side keeps the input's length, whatever it is: no clip length is
baked into the network. The padding *replicates* the first and last frames (the clip is taken
to go on as it starts and ends, like the MFCC windows' edge padding), so a constant input
(silence) gives a constant output, with no artefacts near the clip's ends. The dilation doubles at every level, ``d = 2^(n-1)``,
so the receptive field grows exponentially with depth (:func:`receptive_field`).

**Residual attention block** (Fig. 5, Eqs. 2-4). Each level is two dilated convs (weight
norm, ReLU, dropout), then multi-head self-attention with ``Q = K = V = Z_n``. Unlike works
that weight *frames*, TCSAN weights the *elements of the feature within each frame*: the C
channels of a frame are cut into ``C / token_dim`` tokens, and the tokens attend to each other
(:class:`ElementAttention`), so the network can learn how the identity, audio and AU parts of
the feature relate. Attention never crosses frames, so it does not widen the receptive field.

Alternatives of the paper's Table 3, all ``(B, T, C_in) -> (B, T, C_out)``:
:class:`GRUFusion`, :class:`TCNFusion` (no attention), :class:`MhAttTCNFusion` (attention over
*frames*, then a TCN) and :class:`CoAttTCNFusion` (audio <-> AU co-attention, then a TCN).
:func:`make_fusion` builds the one named by ``TalkerConfig.fusion``.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from .config import TalkerConfig


def receptive_field(levels: int, kernel: int = 3, convs_per_level: int = 2) -> int:
    """Frames that one output frame sees: ``1 + convs (k - 1) (2^levels - 1)``.

    Level n has ``convs_per_level`` convs of dilation ``2^(n-1)``, each reaching
    ``2^(n-1) (k - 1) / 2`` frames further on both sides. Paper (k=3, 4 levels): 61 frames,
    i.e. 30 before and 30 after (1.2 s each way at 25 fps).
    """
    return 1 + convs_per_level * (kernel - 1) * (2 ** levels - 1)


class ElementAttention(nn.Module):
    """Multi-head self-attention among the elements of each frame's feature (Eqs. 2-4).

    Args:
        channels: C, the feature width; split into ``C / token_dim`` tokens.
        token_dim: size of one token; must divide C and be divisible by ``heads``.
        heads: h (paper 4). dropout: on the attention weights.

    ``forward(z (B, C, T)) -> (B, C, T)`` (and the weights ``(B, T, h, n, n)`` on request).
    """

    def __init__(self, channels: int, token_dim: int = 16, heads: int = 4, dropout: float = 0.0):
        super().__init__()
        if channels % token_dim or token_dim % heads:
            raise ValueError(f"need token_dim | channels and heads | token_dim, got "
                             f"{channels=}, {token_dim=}, {heads=}")
        self.n_tokens, self.token_dim, self.heads = channels // token_dim, token_dim, heads
        # which part of the feature a token is: attention alone is blind to token order
        self.position = nn.Parameter(torch.randn(self.n_tokens, token_dim) * 0.02)
        self.qkv = nn.Linear(token_dim, 3 * token_dim)  # the h learned projections, stacked
        self.proj = nn.Linear(token_dim, token_dim)  # W of Eq. 3
        self.drop = nn.Dropout(dropout)

    def forward(self, z: torch.Tensor, return_weights: bool = False):
        b, c, t = z.shape
        n, h, hd = self.n_tokens, self.heads, self.token_dim // self.heads
        x = z.transpose(1, 2).reshape(b * t, n, self.token_dim) + self.position  # every frame
        q, k, v = self.qkv(x).reshape(b * t, n, 3, h, hd).permute(2, 0, 3, 1, 4)
        w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1)  # Eq. 2
        out = (self.drop(w) @ v).transpose(1, 2).reshape(b * t, n, self.token_dim)
        out = self.proj(out).reshape(b, t, c).transpose(1, 2)  # concat heads, project: Eq. 3
        return (out, w.reshape(b, t, h, n, n)) if return_weights else out


class ResidualAttentionBlock(nn.Module):
    """Two non-causal dilated convs, element self-attention, residual connection (Fig. 5).

    ``forward(x (B, C_in, T)) -> (B, C_out, T)``, same T.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int, dropout: float,
                 attention: ElementAttention | None = None):
        super().__init__()
        pad = dilation * (kernel - 1) // 2  # as many frames before as after: non-causal

        def conv(ci):
            return weight_norm(nn.Conv1d(ci, c_out, kernel, padding=pad, dilation=dilation,
                                         padding_mode="replicate"))

        self.convs = nn.Sequential(conv(c_in), nn.ReLU(), nn.Dropout(dropout),
                                   conv(c_out), nn.ReLU(), nn.Dropout(dropout))
        self.attention = attention
        self.residual = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, return_weights: bool = False):
        z = self.convs(x)
        w = None
        if self.attention is not None:
            # Z_hat = M_h(Z) of Eq. 4, added to Z (a Transformer-style identity path: the block
            # starts out as a plain TCN block and learns how much re-weighting helps)
            a, w = self.attention(z, return_weights=True)
            z = z + a
        out = torch.relu(z + self.residual(x))
        return (out, w) if return_weights else out


class TCSAN(nn.Module):
    """Stack of residual attention blocks with dilation ``2^(n-1)`` at level n.

    Args:
        c_in: input width per frame (paper 1344). channels: width of every level (C_out).
        levels, kernel: depth and (odd) kernel size. heads, token_dim: element attention.
        dropout: in the conv branches and on the attention weights.
        attention: False gives the plain non-causal TCN (:class:`TCNFusion`).

    ``forward(x (B, T, C_in)) -> (B, T, channels)`` for any T >= 1.
    """

    def __init__(self, c_in: int, channels: int, levels: int = 4, kernel: int = 3,
                 heads: int = 4, dropout: float = 0.1, token_dim: int = 16,
                 attention: bool = True):
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError(f"kernel must be odd for a symmetric window, got {kernel}")
        self.levels, self.kernel, self.out_dim = levels, kernel, channels
        self.blocks = nn.ModuleList(
            ResidualAttentionBlock(
                c_in if n == 1 else channels, channels, kernel, 2 ** (n - 1), dropout,
                ElementAttention(channels, token_dim, heads, dropout) if attention else None)
            for n in range(1, levels + 1))

    def receptive_field(self) -> int:
        """Frames one output frame depends on (see :func:`receptive_field`)."""
        return receptive_field(self.levels, self.kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, 2)  # (B, C, T): Conv1d runs over the last axis, time
        for block in self.blocks:
            x = block(x)
        return x.transpose(1, 2)

    @torch.no_grad()
    def attention_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Attention weights of every level, for plotting: ``(B, T, C_in) ->`` a list of
        ``levels`` tensors ``(B, T, heads, n_tokens, n_tokens)`` (rows sum to 1)."""
        maps, x = [], x.transpose(1, 2)
        for block in self.blocks:
            x, w = block(x, return_weights=True)
            if w is not None:
                maps.append(w)
        return maps


class TCNFusion(TCSAN):
    """The same non-causal dilated TCN without the element attention (Table 3: "TCN")."""

    def __init__(self, c_in: int, channels: int, levels: int = 4, kernel: int = 3,
                 dropout: float = 0.1, **_):
        super().__init__(c_in, channels, levels, kernel, dropout=dropout, attention=False)


class GRUFusion(nn.Module):
    """Bidirectional GRU over the frames (the conference version's RNN; Table 3: "GRU").

    ``forward(x (B, T, C_in)) -> (B, T, c_out)``.
    """

    def __init__(self, c_in: int, c_out: int, layers: int = 2, dropout: float = 0.1):
        super().__init__()
        hidden = (c_out + 1) // 2
        self.gru = nn.GRU(c_in, hidden, num_layers=layers, batch_first=True,
                          bidirectional=True, dropout=dropout if layers > 1 else 0.0)
        self.proj = nn.Linear(2 * hidden, c_out) if 2 * hidden != c_out else nn.Identity()
        self.out_dim = c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.gru(x)[0])


class MhAttTCNFusion(nn.Module):
    """Multi-head self-attention over **frames** (the usual kind), then a TCN.

    ``forward(x (B, T, C_in)) -> (B, T, channels)``. Table 3: "MhAtt + TCN".
    """

    def __init__(self, c_in: int, channels: int, levels: int = 4, kernel: int = 3,
                 heads: int = 4, dropout: float = 0.1):
        super().__init__()
        self.inp = nn.Linear(c_in, channels)
        self.norm = nn.LayerNorm(channels)
        self.attention = nn.MultiheadAttention(channels, heads, dropout=dropout,
                                               batch_first=True)
        self.tcn = TCNFusion(channels, channels, levels, kernel, dropout)
        self.out_dim = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        n = self.norm(h)
        h = h + self.attention(n, n, n, need_weights=False)[0]  # every frame attends to all
        return self.tcn(h)


class CoAttTCNFusion(nn.Module):
    """Co-attention between the audio and AU streams over frames, then a TCN.

    The audio frames attend to the AU frames and vice versa; the two attended streams
    (plus any other stream, e.g. identity, unchanged) are concatenated and fed to a TCN.

    Args:
        in_dims: widths of the concatenated input in order, e.g.
            ``{"id": 512, "audio": 512, "au": 320}``; must contain ``audio_key`` and ``au_key``.
        channels: output width; the co-attention works at ``channels // 2``.

    ``forward(x (B, T, sum(in_dims))) -> (B, T, channels)``. Table 3: "CoAtt + TCN".
    """

    def __init__(self, in_dims: dict[str, int], channels: int, levels: int = 4, kernel: int = 3,
                 heads: int = 4, dropout: float = 0.1, audio_key: str = "audio",
                 au_key: str = "au"):
        super().__init__()
        if not in_dims.get(audio_key) or not in_dims.get(au_key):
            raise ValueError(f"co-attention needs both {audio_key!r} and {au_key!r} streams, "
                             f"got {in_dims}")
        self.names, self.sizes = list(in_dims), list(in_dims.values())
        self.audio_key, self.au_key = audio_key, au_key
        d = channels // 2
        self.audio_in = nn.Linear(in_dims[audio_key], d)
        self.au_in = nn.Linear(in_dims[au_key], d)
        self.audio_to_au = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.au_to_audio = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        others = sum(s for k, s in in_dims.items() if k not in (audio_key, au_key))
        self.tcn = TCNFusion(others + 2 * d, channels, levels, kernel, dropout)
        self.out_dim = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = dict(zip(self.names, torch.split(x, self.sizes, dim=-1)))
        a, u = self.audio_in(parts.pop(self.audio_key)), self.au_in(parts.pop(self.au_key))
        a2 = a + self.audio_to_au(a, u, u, need_weights=False)[0]  # audio queries the AUs
        u2 = u + self.au_to_audio(u, a, a, need_weights=False)[0]  # AUs query the audio
        return self.tcn(torch.cat([*parts.values(), a2, u2], dim=-1))


def make_fusion(cfg: TalkerConfig, in_dims: dict[str, int]) -> nn.Module:
    """The fusion named by ``cfg.fusion`` for inputs of widths ``in_dims`` (zeros dropped).

    Returns a module ``(B, T, sum(in_dims)) -> (B, T, cfg.tcsan_channels)`` with ``out_dim``.
    """
    in_dims = {k: v for k, v in in_dims.items() if v}
    c_in, c = sum(in_dims.values()), cfg.tcsan_channels
    common = dict(levels=cfg.tcsan_levels, kernel=cfg.kernel, dropout=cfg.dropout)
    if cfg.fusion == "tcsan":
        return TCSAN(c_in, c, heads=cfg.heads, token_dim=cfg.attn_token_dim, **common)
    if cfg.fusion == "tcn":
        return TCNFusion(c_in, c, **common)
    if cfg.fusion == "gru":
        return GRUFusion(c_in, c, dropout=cfg.dropout)
    if cfg.fusion == "mhatt_tcn":
        return MhAttTCNFusion(c_in, c, heads=cfg.heads, **common)
    if cfg.fusion == "coatt_tcn":
        return CoAttTCNFusion(in_dims, c, heads=cfg.heads, **common)
    raise ValueError(f"unknown fusion {cfg.fusion!r}")
