"""``coursekit checkpoint info`` and ``upgrade``: what a checkpoint file holds, and rewriting
files of older layouts in the current format (:mod:`coursekit.checkpoint`)::

    coursekit checkpoint info coursekit/assets/tiny/diffusion.pt
    coursekit checkpoint upgrade old/talker.pt old/audio2au.pt [--half]
"""

from __future__ import annotations

import sys
from pathlib import Path

CONFIG_ITEMS = 12
"""At most this many ``model_config`` entries in ``info``'s summary."""


def _load(path: str | Path) -> tuple[object, dict]:
    """``(stored format_version or None for an older layout, checkpoint in the current
    format)``. FileNotFoundError / CheckpointError (one line naming the file) otherwise."""
    import torch

    from ..checkpoint import read_checkpoint, upgrade

    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001  read_checkpoint raises the one-line error
        raw = read_checkpoint(path)
    stored = raw.get("format_version") if isinstance(raw, dict) else None
    return stored, upgrade(raw, path)


def _weights(ckpt: dict) -> dict:
    return ckpt["ema"] if ckpt.get("ema") else ckpt["model"]


def _check(ckpt: dict, path):
    """Rebuild the model of ``ckpt`` from its config (on the meta device: nothing allocated)
    and load its weights into it; returns the model. CheckpointError (one line) when the kind
    is unknown or the weights do not fit the config."""
    import torch

    from ..checkpoint import KINDS, CheckpointError

    kind = KINDS.get(ckpt["kind"])
    if kind is None:
        raise CheckpointError(f"{path}: unknown checkpoint kind {ckpt['kind']!r}; known: "
                              f"{', '.join(sorted(KINDS))}")
    try:
        with torch.device("meta"):
            model = kind.build(ckpt["model_config"], ckpt.get("meta") or {})
        model.load_state_dict(_weights(ckpt), assign=True)
    except (TypeError, ValueError, RuntimeError, KeyError) as err:
        first = str(err).strip().splitlines()[0][:160]
        raise CheckpointError(f"{path}: its {ckpt['kind']!r} weights do not fit the model its "
                              f"config describes ({first})") from None
    return model


def _summary(config: dict) -> str:
    """``key=value, ...`` of the first :data:`CONFIG_ITEMS` entries (nested ones as ``{n}``)."""
    items = []
    for key, value in config.items():
        if isinstance(value, dict):
            value = f"{{{len(value)} fields}}"
        elif isinstance(value, (list, tuple)) and len(value) > 6:
            value = f"[{len(value)} values]"
        items.append(f"{key}={value}")
    more = f", ... ({len(items)} entries)" if len(items) > CONFIG_ITEMS else ""
    return ", ".join(items[:CONFIG_ITEMS]) + more


def describe(path: str | Path) -> list[str]:
    """The lines of ``coursekit checkpoint info PATH``."""
    from ..checkpoint import FORMAT_VERSION, KINDS

    stored, ckpt = _load(path)
    model = _check(ckpt, path)
    n_params = sum(p.numel() for p in model.parameters())
    size = getattr(model, "image_size", None) or getattr(getattr(model, "cfg", None),
                                                          "image_size", None)
    weights = _weights(ckpt)
    dtypes = sorted({str(v.dtype).removeprefix("torch.") for v in weights.values()
                     if v.is_floating_point()})
    fmt = (f"{stored}" + (" (current)" if stored == FORMAT_VERSION else "") if stored is not None
           else f"an older layout (read as format {FORMAT_VERSION}; `coursekit checkpoint "
           "upgrade` rewrites it)")
    training = ckpt.get("training") or {}
    meta = ckpt.get("meta") or {}
    if training:
        state = (f"step {training.get('step')}, epoch {training.get('epoch')} "
                 "(a resumable training state)")
    else:
        state = "none (an inference checkpoint)"
        if "steps" in meta:
            state += f"; trained {meta['steps']} steps"
    return [f"{path}",
            f"  kind: {ckpt['kind']}: {KINDS[ckpt['kind']].description}",
            f"  format: {fmt}",
            f"  file: {Path(path).stat().st_size / 2**20:.1f} MB, weights {'/'.join(dtypes)}"
            f"{', EMA' if ckpt.get('ema') else ''}",
            f"  parameters: {n_params:,} ({n_params / 1e6:.2f} M)"
            + (f", faces of {size} px" if size else ""),
            f"  config: {_summary(ckpt.get('model_config') or {})}",
            f"  meta: {', '.join(meta) or '(none)'}",
            f"  training: {state}"]


def upgrade_file(path: str | Path, half: bool = False) -> str:
    """Rewrite ``path`` in the current format (``half``: floating weights in fp16) through
    :func:`~coursekit.checkpoint.read_checkpoint` and
    :func:`~coursekit.checkpoint.save_checkpoint`; returns what was done (one line)."""
    import torch

    from ..checkpoint import FORMAT_VERSION, CheckpointError, save_checkpoint

    stored, ckpt = _load(path)
    _check(ckpt, path)
    if half and ckpt.get("training"):
        raise CheckpointError(f"{path}: holds a training state; --half is for inference "
                              "checkpoints (fp16 weights would change the resumed run)")
    halved = False
    if half:
        for key in ("model", "ema"):
            if ckpt.get(key):
                halved |= any(v.dtype == torch.float32 for v in ckpt[key].values())
                ckpt[key] = {k: v.half() if v.is_floating_point() else v
                             for k, v in ckpt[key].items()}
    if stored == FORMAT_VERSION and not halved:
        return f"{path}: already format {FORMAT_VERSION}{', fp16' if half else ''}; unchanged"
    save_checkpoint(path, **ckpt)
    what = "upgraded to format" if stored != FORMAT_VERSION else "rewritten in format"
    return f"{path}: {what} {FORMAT_VERSION}{' with fp16 weights' if halved else ''}"


def _info(args) -> int:
    from ..checkpoint import CheckpointError

    status = 0
    for path in args.paths:
        try:
            print("\n".join(describe(path)))
        except (FileNotFoundError, CheckpointError) as err:
            print(f"coursekit checkpoint info: error: {err}", file=sys.stderr)
            status = 2
    return status


def _upgrade(args) -> int:
    from ..checkpoint import CheckpointError

    status = 0
    for path in args.paths:
        try:
            print(upgrade_file(path, half=args.half))
        except (FileNotFoundError, CheckpointError, OSError) as err:
            print(f"coursekit checkpoint upgrade: error: {err}", file=sys.stderr)
            status = 2
    return status


def register(sub) -> None:
    """Add ``checkpoint info`` and ``checkpoint upgrade`` to the ``coursekit`` parser."""
    group = sub.add_parser("checkpoint", help="inspect or upgrade checkpoint files").add_subparsers(
        dest="action", required=True)
    info = group.add_parser("info", help="kind, format, config, parameters, meta, training step")
    info.add_argument("paths", nargs="+", metavar="PATH", help="checkpoint file(s)")
    info.set_defaults(func=_info)
    up = group.add_parser("upgrade", help="rewrite files of older layouts in the current format")
    up.add_argument("paths", nargs="+", metavar="PATH",
                    help="checkpoint file(s), rewritten in place")
    up.add_argument("--half", action="store_true",
                    help="store floating weights in fp16 (inference checkpoints only)")
    up.set_defaults(func=_upgrade)
