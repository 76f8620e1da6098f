"""ONNX export: a fastconv model as an ONNX graph (opset 17) that ONNX Runtime, and
the runtimes of edge boards, run without fastconv.

    fc.export_onnx(model, "camera.onnx", (1, 3, 96, 96))

The forward is run once on the tape with an example input (like ``torch.onnx.export``'s
tracing); every layer call and op it records becomes ONNX nodes, parameters and
running statistics become initialisers.  The graph is the inference graph (BatchNorm
with running statistics, Dropout as identity).  The batch dimension is dynamic; Python
control flow that depends on the data or on the spatial size is frozen at the traced
values.  Needs the ``onnx`` package (``pip install 'fastconv[onnx]'``).
"""
import numpy as np

from . import autograd, nn
from ._torch_trace import record_calls

__all__ = ["export_onnx", "OPSET"]

OPSET = 17


def _onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise ImportError("export_onnx needs the onnx package: pip install 'fastconv[onnx]'") \
            from None
    return onnx, helper, numpy_helper


class _Graph:
    """Nodes and initialisers being built, with fresh names."""

    def __init__(self, helper, numpy_helper):
        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.inits, self.count = [], [], 0

    def name(self, hint):
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, value, hint="c", dtype=np.float32):
        arr = np.asarray(value, dtype)
        n = self.name(hint)
        self.inits.append(self.numpy_helper.from_array(np.ascontiguousarray(arr), n))
        return n

    def ints(self, values, hint="shape"):
        return self.const(np.asarray(values, np.int64), hint, np.int64)

    def node(self, op, inputs, n_out=1, **attrs):
        outs = [self.name(op.lower()) for _ in range(n_out)]
        self.nodes.append(self.helper.make_node(op, list(inputs), outs, **attrs))
        return outs[0] if n_out == 1 else outs


def _fail(what, why):
    raise TypeError(f"export_onnx: {what} cannot be exported to ONNX: {why}")


# ------------------------------------------------------------------ layers

def _conv(g, m, x, xt):
    if m.padding_mode != "zeros":
        pt, pb, pl, pr = m._pads(xt.shape[2], xt.shape[3])
        x = _pad(g, x, (pl, pr, pt, pb), m.padding_mode, 0.0, xt.ndim)
        pads = [0, 0, 0, 0]
    else:
        pt, pb, pl, pr = m._pads(xt.shape[2], xt.shape[3])
        pads = [pt, pl, pb, pr]
    ins = [x, g.const(m.weight.data, "weight")]
    if m.bias is not None:
        ins.append(g.const(m.bias.data, "bias"))
    return g.node("Conv", ins, kernel_shape=list(m.kernel_size), strides=list(m.stride),
                  dilations=list(m.dilation), pads=pads, group=m.groups)


def _conv_transpose(g, m, x, xt):
    ins = [x, g.const(m.weight.data, "weight")]
    if m.bias is not None:
        ins.append(g.const(m.bias.data, "bias"))
    ph, pw = m.padding
    return g.node("ConvTranspose", ins, kernel_shape=list(m.kernel_size),
                  strides=list(m.stride), dilations=list(m.dilation), pads=[ph, pw, ph, pw],
                  output_padding=list(m.output_padding), group=m.groups)


def _linear(g, m, x, xt):
    w = g.const(m.weight.data, "weight")
    if xt.ndim == 2:
        ins = [x, w] + ([g.const(m.bias.data, "bias")] if m.bias is not None else [])
        return g.node("Gemm", ins, transB=1)
    y = g.node("MatMul", [x, g.const(m.weight.data.T, "weight_t")])
    return g.node("Add", [y, g.const(m.bias.data, "bias")]) if m.bias is not None else y


def _batch_norm(g, m, x, xt, relu=False):
    if not m.track_running_stats:
        _fail(type(m).__name__, "without running statistics it normalises with each "
              "batch's own, which an inference graph does not")
    c = m.num_features
    scale = m.weight.data if m.weight is not None else np.ones(c, np.float32)
    bias = m.bias.data if m.bias is not None else np.zeros(c, np.float32)
    y = g.node("BatchNormalization", [x, g.const(scale, "gamma"), g.const(bias, "beta"),
                                      g.const(m.running_mean, "mean"),
                                      g.const(m.running_var, "var")], epsilon=m.eps)
    return g.node("Relu", [y]) if relu else y


def _instance_norm(g, m, x, xt):
    if m.track_running_stats:           # eval: the running statistics, as BatchNorm
        return _batch_norm(g, m, x, xt)
    c = m.num_features
    scale = m.weight.data if m.affine else np.ones(c, np.float32)
    bias = m.bias.data if m.affine else np.zeros(c, np.float32)
    return g.node("InstanceNormalization", [x, g.const(scale), g.const(bias)], epsilon=m.eps)


def _group_norm(g, m, x, xt):
    G, c = m.num_groups, m.num_channels
    y = g.node("Reshape", [x, g.ints([0, G, -1])])
    y = g.node("InstanceNormalization", [y, g.const(np.ones(G)), g.const(np.zeros(G))],
               epsilon=m.eps)
    y = g.node("Reshape", [y, g.ints([0] + list(xt.shape[1:]))])
    if m.affine:
        shape = (c,) + (1,) * (xt.ndim - 2)
        y = g.node("Mul", [y, g.const(m.weight.data.reshape(shape))])
        y = g.node("Add", [y, g.const(m.bias.data.reshape(shape))])
    return y


def _layer_norm(g, m, x, xt):
    shape = tuple(m.normalized_shape)
    ins = [x, g.const(m.weight.data if m.weight is not None else np.ones(shape))]
    if m.bias is not None:
        ins.append(g.const(m.bias.data))
    return g.node("LayerNormalization", ins, axis=-len(shape), epsilon=m.eps)


def _max_pool(g, m, x, xt):
    if m.return_indices:
        _fail("MaxPool2d(return_indices=True)", "ONNX's indices count over the whole "
              "tensor, torch's per plane; export the model without MaxUnpool2d")
    k, s, p, d = m._args
    return g.node("MaxPool", [x], kernel_shape=list(k), strides=list(s),
                  pads=[p[0], p[1], p[0], p[1]], dilations=list(d), ceil_mode=int(m.ceil_mode))


def _avg_pool(g, m, x, xt):
    if m.divisor_override is not None:
        _fail("AvgPool2d(divisor_override=...)", "ONNX's AveragePool has no divisor")
    k, s, p, _ = m._args
    return g.node("AveragePool", [x], kernel_shape=list(k), strides=list(s),
                  pads=[p[0], p[1], p[0], p[1]], ceil_mode=int(m.ceil_mode),
                  count_include_pad=int(m.count_include_pad))


def _adaptive_pool(g, m, x, xt, out):
    oh, ow = out.shape[2:]
    h, w = xt.shape[2:]
    is_max = isinstance(m, nn.AdaptiveMaxPool2d)
    if (oh, ow) == (1, 1):
        return g.node("GlobalMaxPool" if is_max else "GlobalAveragePool", [x])
    if h % oh or w % ow:
        _fail(f"{type(m).__name__}({m.output_size})", f"its windows on a {h}x{w} input "
              f"overlap unevenly (ONNX pools need one window size); export at an input "
              f"size divisible by the output size")
    k = [h // oh, w // ow]
    return g.node("MaxPool" if is_max else "AveragePool", [x], kernel_shape=k, strides=k)


def _upsample(g, m, x, xt, out):
    if m.mode == "nearest":
        attrs = dict(mode="nearest", coordinate_transformation_mode="asymmetric",
                     nearest_mode="floor")
    elif m.mode == "bilinear":
        attrs = dict(mode="linear", coordinate_transformation_mode="align_corners"
                     if m.align_corners else "pytorch_half_pixel")
    else:
        _fail(f"Upsample(mode={m.mode!r})", "no matching Resize mode")
    if m._scale is not None:            # torch maps coordinates with the given factor
        scales = [1.0, 1.0, *m._scale]
    else:
        scales = [1.0, 1.0, out.shape[2] / xt.shape[2], out.shape[3] / xt.shape[3]]
    return g.node("Resize", [x, "", g.const(scales, "scales")], **attrs)


def _pixel_shuffle(g, m, x, xt):
    return g.node("DepthToSpace", [x], blocksize=m.upscale_factor, mode="CRD")


def _pixel_unshuffle(g, m, x, xt):
    r = m.downscale_factor
    _, c, h, w = xt.shape
    y = g.node("Reshape", [x, g.ints([0, c, h // r, r, w // r, r])])
    y = g.node("Transpose", [y], perm=[0, 1, 3, 5, 2, 4])
    return g.node("Reshape", [y, g.ints([0, c * r * r, h // r, w // r])])


def _flatten(g, m, x, xt, out):
    if m.start_dim == 1 and m.end_dim in (-1, xt.ndim - 1):
        return g.node("Flatten", [x], axis=1)
    return _reshape_to(g, x, xt, out.shape)


def _elementwise(g, m, x, xt):
    op = getattr(m, "_op", None)
    if isinstance(m, nn.ReLU):
        return g.node("Relu", [x])
    if op == "relu6":
        return g.node("Clip", [x, g.const(0.0), g.const(6.0)])
    if op == "leaky_relu":
        return g.node("LeakyRelu", [x], alpha=float(m.negative_slope))
    if op == "elu":
        return g.node("Elu", [x], alpha=float(m.alpha))
    if op == "silu":
        return g.node("Mul", [x, g.node("Sigmoid", [x])])
    if op == "sigmoid":
        return g.node("Sigmoid", [x])
    if op == "tanh":
        return g.node("Tanh", [x])
    if op == "hardswish":
        return g.node("HardSwish", [x])
    if op == "hardsigmoid":
        return g.node("HardSigmoid", [x], alpha=1 / 6, beta=0.5)
    if op == "mish":
        return g.node("Mul", [x, g.node("Tanh", [g.node("Softplus", [x])])])
    if op == "gelu":                    # 0.5 x (1 + erf(x / sqrt 2))
        e = g.node("Erf", [g.node("Mul", [x, g.const(1 / np.sqrt(2))])])
        return g.node("Mul", [g.node("Mul", [x, g.const(0.5)]),
                              g.node("Add", [e, g.const(1.0)])])
    if op == "gelu_tanh":               # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        x3 = g.node("Mul", [g.node("Mul", [x, x]), x])
        inner = g.node("Add", [x, g.node("Mul", [x3, g.const(0.044715)])])
        t = g.node("Tanh", [g.node("Mul", [inner, g.const(np.sqrt(2 / np.pi))])])
        return g.node("Mul", [g.node("Mul", [x, g.const(0.5)]),
                              g.node("Add", [t, g.const(1.0)])])
    _fail(type(m).__name__, f"no ONNX form known for the activation {op!r}")


def _prelu(g, m, x, xt):
    w = m.weight.data
    slope = w.reshape((-1,) + (1,) * (xt.ndim - 2)) if w.size > 1 else w
    return g.node("PRelu", [x, g.const(slope, "slope")])


def _pad(g, x, pads, mode, value, ndim):
    """torch.nn.functional.pad's (left, right, top, bottom) of the last two dims."""
    pl, pr, pt, pb = pads
    if mode == "circular":              # opset 17 has no wrap mode: slices concatenated
        y = x
        for axis, (a, b) in ((ndim - 1, (pl, pr)), (ndim - 2, (pt, pb))):
            parts = []
            if a:
                parts.append(g.node("Slice", [y, g.ints([-a]), g.ints([2 ** 62]),
                                              g.ints([axis])]))
            parts.append(y)
            if b:
                parts.append(g.node("Slice", [y, g.ints([0]), g.ints([b]), g.ints([axis])]))
            if len(parts) > 1:
                y = g.node("Concat", parts, axis=axis)
        return y
    begin = [0] * (ndim - 2) + [pt, pl]
    end = [0] * (ndim - 2) + [pb, pr]
    onnx_mode = {"constant": "constant", "zeros": "constant", "reflect": "reflect",
                 "replicate": "edge"}[mode]
    ins = [x, g.ints(begin + end, "pads")]
    if onnx_mode == "constant":
        ins.append(g.const(value))
    return g.node("Pad", ins, mode=onnx_mode)


def _pad_layer(g, m, x, xt):
    return _pad(g, x, m.padding, m._mode, m.value, xt.ndim)


def _identity(g, m, x, xt):
    return g.node("Identity", [x])


_LAYERS = [      # (class, converter(g, module, x name, x Tensor[, output]), wants output)
    (nn.Conv2d, _conv, False), (nn.ConvTranspose2d, _conv_transpose, False),
    (nn.Linear, _linear, False), (nn.BatchNorm2d, _batch_norm, False),
    (nn.InstanceNorm2d, _instance_norm, False), (nn.GroupNorm, _group_norm, False),
    (nn.LayerNorm, _layer_norm, False), (nn.MaxPool2d, _max_pool, False),
    (nn.AvgPool2d, _avg_pool, False), (nn.AdaptiveAvgPool2d, _adaptive_pool, True),
    (nn.Upsample, _upsample, True), (nn.PixelShuffle, _pixel_shuffle, False),
    (nn.PixelUnshuffle, _pixel_unshuffle, False), (nn.Flatten, _flatten, True),
    (nn.PReLU, _prelu, False), (nn.ReLU, _elementwise, False),
    (nn.Dropout, _identity, False), (nn.Dropout2d, _identity, False),
    (nn.Identity, _identity, False),
]


def _layer(g, m, names, args, out):
    x, xt = names[0], args[0]
    if isinstance(m, nn.BatchNorm2d) and len(args) > 1 and args[1] is True:
        return _batch_norm(g, m, x, xt, relu=True)        # forward_relu
    for cls, fn, wants_out in _LAYERS:
        if isinstance(m, cls):
            return fn(g, m, x, xt, out) if wants_out else fn(g, m, x, xt)
    if hasattr(m, "_op") and type(m).__module__.endswith("activation"):
        return _elementwise(g, m, x, xt)
    if hasattr(m, "_mode") and hasattr(m, "padding"):
        return _pad_layer(g, m, x, xt)
    _fail(type(m).__name__, "no ONNX form is known for this layer (losses and MaxUnpool2d "
          "have none; a layer of your own needs a plain forward of fastconv layers and ops)")


# ------------------------------------------------------------------ ops

def _reshape_to(g, x, xt, shape):
    shape = list(shape)
    if shape and xt.ndim and shape[0] == xt.shape[0]:
        shape[0] = 0                    # keep the input's batch: dynamic
    return g.node("Reshape", [x, g.ints(shape)])


def _axes(dim, ndim):
    if dim is None:
        return list(range(ndim))
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    return [int(d) % ndim for d in dims]


def _slice(g, x, xt, index):
    index = index if isinstance(index, tuple) else (index,)
    if any(i is Ellipsis for i in index):
        k = index.index(Ellipsis)
        index = index[:k] + (slice(None),) * (xt.ndim - len(index) + 1) + index[k + 1:]
    starts, ends, axes, steps, squeeze = [], [], [], [], []
    for axis, i in enumerate(index):
        if isinstance(i, (int, np.integer)):
            i = int(i) % xt.shape[axis]
            starts.append(i), ends.append(i + 1), axes.append(axis), steps.append(1)
            squeeze.append(axis)
        elif isinstance(i, slice):
            if i == slice(None):
                continue
            a, b, s = i.indices(xt.shape[axis])
            if axis == 0:
                _fail("slicing the batch axis", "the exported batch is dynamic")
            if s < 0:
                _fail(f"the slice {i}", "negative steps are not exported")
            starts.append(a), ends.append(b), axes.append(axis), steps.append(s)
        else:
            _fail(f"indexing with {type(i).__name__}", "only ints and slices are exported")
    y = x
    if axes:
        y = g.node("Slice", [x, g.ints(starts), g.ints(ends), g.ints(axes), g.ints(steps)])
    if squeeze:
        y = g.node("Squeeze", [y, g.ints(squeeze)])
    return y


def _op(g, name, args, kwargs, outputs, arg):
    if name in ("add", "sub", "mul", "div"):
        op = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div"}[name]
        return g.node(op, [arg(a) for a in args])
    x, xt = (arg(args[0]), args[0]) if args and isinstance(args[0], autograd.Tensor) \
        else (None, None)
    if name in ("sum", "mean"):
        axes = _axes(kwargs.get("dim"), xt.ndim)
        keep = int(bool(kwargs.get("keepdim", False)))
        if name == "sum":
            return g.node("ReduceSum", [x, g.ints(axes)], keepdims=keep)
        return g.node("ReduceMean", [x], axes=axes, keepdims=keep)
    if name == "reshape":
        return _reshape_to(g, x, xt, outputs[0].shape)
    if name == "permute":
        perm = [int(d) % xt.ndim for d in kwargs["dims"]]
        if perm[0] != 0:
            _fail("a permute that moves the batch axis", "the exported batch is dynamic")
        return g.node("Transpose", [x], perm=perm)
    if name == "getitem":
        return _slice(g, x, xt, kwargs["index"])
    if name in ("cat", "stack"):
        xs = args[0]
        dim = int(kwargs.get("dim", 0))
        nd = xs[0].ndim + (name == "stack")
        dim %= nd
        ins = [arg(t) for t in xs]
        if name == "stack":
            ins = [g.node("Unsqueeze", [i, g.ints([dim])]) for i in ins]
        return g.node("Concat", ins, axis=dim)
    if name in ("split", "chunk"):
        dim = int(kwargs.get("dim", 0)) % xt.ndim
        sizes = [o.shape[dim] for o in outputs]
        return g.node("Split", [x, g.ints(sizes)], n_out=len(sizes), axis=dim)
    if name in ("softmax", "log_softmax"):
        return g.node("Softmax" if name == "softmax" else "LogSoftmax", [x],
                      axis=int(kwargs["dim"]) % xt.ndim)
    if name == "pad":
        return _pad(g, x, kwargs["pads"], kwargs.get("mode", "constant"),
                    kwargs.get("value", 0.0), xt.ndim)
    _fail(f"the op {name!r}", "no ONNX form is known for it")


# ------------------------------------------------------------------ export

def export_onnx(model, path, input_shape, opset=OPSET, dynamic_batch=True, metadata=None):
    """Write ``model`` (a fastconv Module: a layer, a chain or a plain forward of layers
    and ops) as an ONNX file at ``path`` for inputs of ``input_shape`` (N, C, H, W)
    float32; returns the onnx.ModelProto.  The batch dimension is named ``N`` and left
    free unless ``dynamic_batch=False``; the input is named ``input``, the outputs
    ``output`` (``output0``, ``output1``... for several).  metadata: a dict of strings
    stored in the file's metadata_props (the command line stores the classes and the
    input normalisation).

    The model is traced in training mode on a batch of 2 (so no layer's eval-mode
    shortcuts hide the layers), its running statistics are put back afterwards, and
    the graph normalises with them as in eval mode.  Raises TypeError naming the first
    layer or op that ONNX cannot express, ImportError without the onnx package."""
    onnx, helper, numpy_helper = _onnx()
    if opset < OPSET:
        raise ValueError(f"export_onnx: opset {opset} is older than the {OPSET} this "
                         f"exporter writes")
    shape = tuple(int(v) for v in input_shape)
    if len(shape) < 2 or any(v < 1 for v in shape):
        raise ValueError(f"export_onnx: input_shape must be (N, C, ...) of positive sizes, "
                         f"got {input_shape!r}")
    trace_shape = (2,) + shape[1:]
    x = np.random.default_rng(0).standard_normal(trace_shape).astype(np.float32)
    was_training = model.training
    model.train()
    try:
        calls, xt, out = record_calls(model, x)
    finally:
        model.train(was_training)

    g = _Graph(helper, numpy_helper)
    env = {id(xt): "input"}
    params = {id(p): (n, p) for n, p in model.named_parameters()}

    def arg(a):
        if isinstance(a, autograd.Tensor):
            if id(a) in env:
                return env[id(a)]
            if id(a) in params:
                return g.const(a.data, params[id(a)][0].replace(".", "_"))
            return g.const(a.data)
        if isinstance(a, np.ndarray):
            return g.const(a)
        if isinstance(a, (int, float, np.number)) and not isinstance(a, bool):
            return g.const(a)
        _fail(f"an argument of type {type(a).__name__}", "only tensors and numbers are exported")

    for module, name, args, kwargs, outputs in calls:
        if module is not None:
            names = [arg(a) if isinstance(a, autograd.Tensor) else None for a in args]
            res = _layer(g, module, names, args, outputs[0])
        else:
            res = _op(g, name, args, kwargs, outputs, arg)
        res = res if isinstance(res, list) else [res]
        for t, n in zip(outputs, res):
            env[id(t)] = n

    outs = out if isinstance(out, tuple) else (out,)
    out_names = ["output"] if len(outs) == 1 else [f"output{i}" for i in range(len(outs))]
    batch = "N" if dynamic_batch else shape[0]
    for t, n in zip(outs, out_names):
        if not isinstance(t, autograd.Tensor) or id(t) not in env:
            _fail("the model's output", "it was not computed from the input")
        g.nodes.append(helper.make_node("Identity", [env[id(t)]], [n]))
    inputs = [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT,
                                            [batch, *shape[1:]])]
    outputs = [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT,
                                             [batch, *t.shape[1:]])
               for t, n in zip(outs, out_names)]
    graph = helper.make_graph(g.nodes, type(model).__name__, inputs, outputs, g.inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="fastconv")
    if metadata:
        helper.set_model_props(proto, {str(k): str(v) for k, v in metadata.items()})
    onnx.checker.check_model(proto)
    from .interop import _atomic_write
    data = proto.SerializeToString()
    _atomic_write(path, lambda fh: fh.write(data))
    return proto
