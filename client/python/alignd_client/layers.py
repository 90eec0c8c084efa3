"""Network layers for create_session: a list of dicts, or alignctl's compact string, as the wire's
LayerSpec messages (config.proto), and back.

    [{"kind": "conv", "channels": 6, "kernel": 5},            # kernel: 5 or (5, 5); stride, padding
     {"kind": "pool", "window": 2},                            # pool = maxpool; avgpool; stride
     {"kind": "dense", "units": 120}, {"kind": "flatten"}]

or "conv:6x5x5,pool:2,dense:120" (conv:CxKHxKW[:sS][:pP], pool:W / maxpool:W[:sS], avgpool:W,
dense:N, flatten). The wire's own names (units, kernel_h, kernel_w, "LAYER_KIND_CONV") are
accepted too.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence, Tuple, Union

from ._pb.alignd.v1 import config_pb2

LayersArg = Union[str, Sequence[Mapping[str, Any]]]

_KINDS = {
    "dense": config_pb2.LAYER_KIND_DENSE, "linear": config_pb2.LAYER_KIND_DENSE,
    "conv": config_pb2.LAYER_KIND_CONV, "conv2d": config_pb2.LAYER_KIND_CONV,
    "pool": config_pb2.LAYER_KIND_MAX_POOL, "maxpool": config_pb2.LAYER_KIND_MAX_POOL,
    "max_pool": config_pb2.LAYER_KIND_MAX_POOL,
    "avgpool": config_pb2.LAYER_KIND_AVG_POOL, "avg_pool": config_pb2.LAYER_KIND_AVG_POOL,
    "flatten": config_pb2.LAYER_KIND_FLATTEN,
}
_EXAMPLE = "(e.g. conv:6x5x5,pool:2,dense:10)"


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ValueError(text)
    return int(text)


def _dims(text: str, n: int) -> List[int]:
    parts = [_positive(p) for p in text.split("x")]
    if len(parts) != n:
        raise ValueError(text)
    return parts


def parse_layers(text: str) -> List[Dict[str, Any]]:
    """alignctl's compact grammar as a list of dicts; ValueError naming the item (1-based)."""
    out: List[Dict[str, Any]] = []
    for k, raw in enumerate(text.split(","), 1):
        item = raw.strip()
        parts = item.lower().split(":")
        kind = parts[0]

        def bad(expected: str) -> ValueError:
            return ValueError(f"layers item {k} '{item}': expected {expected} {_EXAMPLE}")

        try:
            if kind == "conv":
                if len(parts) < 2:
                    raise bad("conv:CxKHxKW")
                try:
                    c, kh, kw = _dims(parts[1], 3)
                except ValueError:
                    raise bad("conv:CxKHxKW") from None
                layer: Dict[str, Any] = {"kind": "conv", "channels": c, "kernel": (kh, kw)}
                for o in parts[2:]:
                    if o[:1] == "s":
                        layer["stride"] = _positive(o[1:])
                    elif o[:1] == "p" and o[1:].isdigit():
                        layer["padding"] = int(o[1:])
                    else:
                        raise bad("conv:CxKHxKW[:sS][:pP]")
            elif kind in ("pool", "maxpool", "avgpool"):
                expected = f"{kind}:W[:sS] (a W x W window)"
                if len(parts) < 2:
                    raise bad(expected)
                try:
                    layer = {"kind": "avgpool" if kind == "avgpool" else "maxpool", "window": _dims(parts[1], 1)[0]}
                    for o in parts[2:]:
                        if o[:1] != "s":
                            raise ValueError(o)
                        layer["stride"] = _positive(o[1:])
                except ValueError:
                    raise bad(expected) from None
            elif kind == "dense":
                try:
                    if len(parts) != 2:
                        raise ValueError(item)
                    layer = {"kind": "dense", "units": _dims(parts[1], 1)[0]}
                except ValueError:
                    raise bad("dense:N (N units)") from None
            elif kind == "flatten" and len(parts) == 1:
                layer = {"kind": "flatten"}
            else:
                raise bad("conv:, pool:, maxpool:, avgpool:, dense: or flatten")
        except ValueError as e:
            if str(e).startswith("layers item"):
                raise
            raise bad("positive whole numbers") from None
        out.append(layer)
    return out


def _pair(v: Any, what: str) -> Tuple[int, int]:
    if isinstance(v, int):
        return v, v
    t = tuple(v)
    if len(t) != 2:
        raise ValueError(f"{what} must be an int or (height, width), got {v!r}")
    return int(t[0]), int(t[1])


def to_layer_specs(layers: LayersArg) -> List[config_pb2.LayerSpec]:
    """The wire's LayerSpecs for a list of dicts or a compact string; ValueError naming the
    layer (0-based) and the key."""
    if isinstance(layers, str):
        layers = parse_layers(layers)
    out = []
    for i, d in enumerate(layers):
        if not isinstance(d, Mapping):
            raise ValueError(f"layers[{i}] must be a dict (e.g. {{'kind': 'dense', 'units': 10}}), got {d!r}")
        d = dict(d)
        kind_name = str(d.pop("kind", "dense"))
        kind = _KINDS.get(kind_name.lower())
        if kind is None:
            try:
                kind = config_pb2.LayerKind.Value(kind_name)
            except ValueError:
                raise ValueError(f"layers[{i}]: kind '{kind_name}' is not one of: "
                                 f"{', '.join(sorted(_KINDS))}") from None
        s = config_pb2.LayerSpec(kind=kind)
        units = d.pop("units", None)
        channels = d.pop("channels", None)
        if units is not None and channels is not None and units != channels:
            raise ValueError(f"layers[{i}]: give units or channels, not both")
        n = channels if channels is not None else units
        if n is not None:
            s.units = int(n)
        for key in ("kernel", "window"):
            if key in d:
                s.kernel_h, kw = _pair(d.pop(key), f"layers[{i}].{key}")
                s.kernel_w = 0 if kw == s.kernel_h and kind != config_pb2.LAYER_KIND_CONV else kw
        for key in ("kernel_h", "kernel_w", "stride", "padding"):
            if key in d:
                setattr(s, key, int(d.pop(key)))
        if d:
            raise ValueError(f"layers[{i}] ({kind_name}): unknown keys {sorted(d)} (known: kind, units or "
                             "channels, kernel or window, kernel_h, kernel_w, stride, padding)")
        out.append(s)
    return out


def from_layer_specs(specs: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """A session's config.network.layers (as to_python gives them) as the dicts above."""
    out: List[Dict[str, Any]] = []
    for s in specs:
        kind = s.get("kind", "LAYER_KIND_DENSE")
        if kind == "LAYER_KIND_CONV":
            d: Dict[str, Any] = {"kind": "conv", "channels": s.get("units", 0),
                                 "kernel": (s.get("kernel_h", 0), s.get("kernel_w") or s.get("kernel_h", 0))}
            if s.get("stride", 0) > 1:
                d["stride"] = s["stride"]
            if s.get("padding", 0):
                d["padding"] = s["padding"]
        elif kind in ("LAYER_KIND_MAX_POOL", "LAYER_KIND_AVG_POOL"):
            d = {"kind": "maxpool" if kind == "LAYER_KIND_MAX_POOL" else "avgpool", "window": s.get("kernel_h", 0)}
            if s.get("stride", 0) not in (0, s.get("kernel_h", 0)):
                d["stride"] = s["stride"]
        elif kind == "LAYER_KIND_FLATTEN":
            d = {"kind": "flatten"}
        else:
            d = {"kind": "dense", "units": s.get("units", 0)}
        out.append(d)
    return out
