"""The SSCD ONNX graphs run by torch, so descriptors can be computed on a GPU.

onnxruntime's CPU build is what the project installs; its CUDA build is a separate multi-GB
package. torch is installed anyway, so this module reads the ONNX file (with the ``onnx``
package, for its protobuf parser only) and evaluates the graph node by node with torch ops.
It knows exactly the operators the two SSCD graphs use (``OPS``); any other graph is refused.

Weights are folded once at load: fp16 initializers cast to fp32, int8 weights of the quantized
full SSCD dequantized. Activation QuantizeLinear/DequantizeLinear pairs are kept as fake
quantization (round, clamp, rescale), so the output follows onnxruntime's int8 kernels closely
(tests/visual/test_torch_model.py compares the two on CPU).

>>> g = TorchGraph("sscd_distilled.onnx", "cuda")                      # doctest: +SKIP
>>> g(torch.zeros(4, 224, 224, 3, dtype=torch.uint8, device="cuda")).shape   # doctest: +SKIP
torch.Size([4, 512])
"""
from __future__ import annotations

from typing import Callable, Dict, List, Tuple

import numpy as np

from fingerprint.errors import FingerprintError

ONNX_HINT = "the torch backend reads the model with the onnx package: pip install onnx (or '.[gpu]')"


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _qrange(zp) -> Tuple[float, float]:
    import torch

    if zp is not None and zp.dtype == torch.int8:
        return -128.0, 127.0
    return 0.0, 255.0


def _axis_shape(scale, x, axis: int):
    """Reshape a per-axis (1-D) scale/zero point so it broadcasts along ``axis`` of ``x``."""
    if scale.dim() == 0 or scale.numel() == 1:
        return scale.reshape(())
    shape = [1] * x.dim()
    shape[axis % x.dim()] = -1
    return scale.reshape(shape)


def _conv(x, w, b, a):
    import torch.nn.functional as F

    k = len(a.get("kernel_shape", w.shape[2:]))
    pads = a.get("pads", [0] * 2 * k)
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise FingerprintError(f"Conv auto_pad={a['auto_pad']!r} is not supported")
    if pads[:k] != pads[k:]:
        raise FingerprintError("asymmetric Conv padding is not supported")
    return F.conv2d(x, w, b, stride=tuple(a.get("strides", [1] * k)), padding=tuple(pads[:k]),
                    dilation=tuple(a.get("dilations", [1] * k)), groups=int(a.get("group", 1)))


def _maxpool(x, a):
    import torch.nn.functional as F

    k = a["kernel_shape"]
    pads = a.get("pads", [0] * 2 * len(k))
    if pads[:len(k)] != pads[len(k):]:
        raise FingerprintError("asymmetric MaxPool padding is not supported")
    return F.max_pool2d(x, tuple(k), stride=tuple(a.get("strides", [1] * len(k))), padding=tuple(pads[:len(k)]),
                        dilation=tuple(a.get("dilations", [1] * len(k))), ceil_mode=bool(a.get("ceil_mode", 0)))


def _quantize(x, scale, zp, a):
    import torch

    lo, hi = _qrange(zp)
    axis = int(a.get("axis", 1))
    z = _axis_shape(zp.float(), x, axis) if zp is not None else 0.0
    # torch.round rounds half to even, as ONNX's QuantizeLinear does.
    return torch.clamp(torch.round(x / _axis_shape(scale, x, axis)) + z, lo, hi)


def _dequantize(x, scale, zp, a):
    axis = int(a.get("axis", 1))
    z = _axis_shape(zp.float(), x, axis) if zp is not None else 0.0
    return (x.float() - z) * _axis_shape(scale, x, axis)


def _reshape(x, shape, a):
    shape = [int(s) for s in shape.tolist()]
    if not a.get("allowzero", 0):
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return x.reshape(shape)


def _gemm(x, w, b, a):
    if a.get("transA", 0):
        x = x.t()
    y = x @ (w.t() if a.get("transB", 0) else w)
    y = y * float(a.get("alpha", 1.0))
    return y if b is None else y + float(a.get("beta", 1.0)) * b


def _cast(x, a):
    import torch

    to = {1: torch.float32, 10: torch.float16, 7: torch.int64, 6: torch.int32, 2: torch.uint8, 3: torch.int8}
    if a["to"] not in to:
        raise FingerprintError(f"Cast to ONNX type {a['to']} is not supported")
    return x.to(to[a["to"]])


def _clip(x, lo, hi):
    import torch

    return torch.clamp(x, min=None if lo is None else float(lo), max=None if hi is None else float(hi))


def _reduce(fn):
    def run(i, a):
        x = i[0]
        axes = [int(i) for i in a.get("axes", range(x.dim()))]
        return fn(x, axes, bool(a.get("keepdims", 1)))
    return run


def _pow(x, y):
    import torch

    return torch.pow(x, y.float() if hasattr(y, "float") else float(y))


#: op -> fn(inputs (None for an empty name), attributes). Exactly the operators of the SSCD graphs.
OPS: Dict[str, Callable] = {
    "Cast": lambda i, a: _cast(i[0], a),
    "Sub": lambda i, a: i[0] - i[1],
    "Add": lambda i, a: i[0] + i[1],
    "Div": lambda i, a: i[0] / i[1],
    "Relu": lambda i, a: i[0].clamp_min(0),
    "Transpose": lambda i, a: i[0].permute(*a["perm"]),
    "Conv": lambda i, a: _conv(i[0], i[1], i[2] if len(i) > 2 else None, a),
    "MaxPool": lambda i, a: _maxpool(i[0], a),
    "QuantizeLinear": lambda i, a: _quantize(i[0], i[1], i[2] if len(i) > 2 else None, a),
    "DequantizeLinear": lambda i, a: _dequantize(i[0], i[1], i[2] if len(i) > 2 else None, a),
    "Reshape": lambda i, a: _reshape(i[0], i[1], a),
    "Clip": lambda i, a: _clip(i[0], i[1] if len(i) > 1 else None, i[2] if len(i) > 2 else None),
    "Pow": lambda i, a: _pow(i[0], i[1]),
    "ReduceMean": _reduce(lambda x, ax, k: x.mean(dim=ax, keepdim=k)),
    "ReduceL2": _reduce(lambda x, ax, k: x.pow(2).sum(dim=ax, keepdim=k).sqrt()),
    "Gemm": lambda i, a: _gemm(i[0], i[1], i[2] if len(i) > 2 else None, a),
    "Shape": lambda i, a: __import__("torch").tensor(list(i[0].shape)[int(a.get("start", 0)):], device=i[0].device),
    "Expand": lambda i, a: i[0].expand(*[int(s) for s in i[1].tolist()]),
}


class TorchGraph:
    """An SSCD ONNX file as a callable: uint8 NHWC tensor ``(n, h, w, 3)`` -> float32 ``(n, d)``.

    ``device``: a torch device string (``"cuda"``, ``"cuda:1"``, ``"cpu"``). Nodes whose inputs
    are all constants (weight casts and dequantization, ``Constant``) are evaluated once here.
    """

    def __init__(self, path: str, device: str = "cpu"):
        try:
            import onnx
            from onnx import numpy_helper
        except ImportError:
            raise FingerprintError(ONNX_HINT) from None
        import torch

        self.device = torch.device(device)
        model = onnx.load(str(path))
        g = model.graph
        env: Dict[str, object] = {}
        for init in g.initializer:
            arr = numpy_helper.to_array(init)
            env[init.name] = torch.from_numpy(np.array(arr, copy=True)).to(self.device)
        unknown = sorted({n.op_type for n in g.node} - set(OPS) - {"Constant"})
        if unknown:
            raise FingerprintError(f"{path}: operators not supported by the torch backend: {', '.join(unknown)}")
        inputs = {i.name for i in g.input} - set(env)
        if len(inputs) != 1 or len(g.output) != 1:
            raise FingerprintError(f"{path}: expected one image input and one output")
        self.input, self.output = inputs.pop(), g.output[0].name
        self.nodes: List[tuple] = []
        with torch.no_grad():
            for n in g.node:
                a = _attrs(n)
                if n.op_type == "Constant":
                    env[n.output[0]] = torch.from_numpy(np.array(numpy_helper.to_array(n.attribute[0].t),
                                                                 copy=True)).to(self.device)
                    continue
                if all((not x) or x in env for x in n.input) and n.input:
                    env[n.output[0]] = OPS[n.op_type]([env[x] if x else None for x in n.input], a)
                    continue
                self.nodes.append((n.op_type, list(n.input), n.output[0], a))
        self.consts = env

    def __call__(self, images):
        """``images``: uint8 tensor ``(n, h, w, 3)`` on this graph's device."""
        import torch

        env = dict(self.consts)
        env[self.input] = images
        with torch.no_grad():
            for op, ins, out, a in self.nodes:
                env[out] = OPS[op]([env[x] if x else None for x in ins], a)
        return env[self.output]
