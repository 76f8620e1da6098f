"""BatchNorm2d, SyncBatchNorm, GroupNorm, InstanceNorm2d, LayerNorm."""
import numpy as np

from .. import _shape
from .. import functional as F
from ..autograd import Tensor
from .module import Module, Parameter


class BatchNorm2d(Module):
    """Batch normalisation over (N, H, W) per channel, torch.nn.BatchNorm2d's rules.

    Training: normalise with the batch mean and biased variance; update
    running_mean/running_var with ``momentum`` (None: cumulative average) using the
    unbiased variance.  Eval: normalise with the running statistics (or with batch
    statistics when track_running_stats=False).  (N, C, H, W) -> same shape.
    weight (gamma) ones, bias (beta) zeros (keyword-only ``bias=False`` drops beta, as
    in torch 2.13); buffers running_mean, running_var, num_batches_tracked."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, *, bias=True):
        super().__init__()
        name = type(self).__name__
        self.num_features = _shape.positive_int(num_features, "num_features", name)
        if not eps > 0:
            raise ValueError(f"{name}: eps must be > 0, got {eps}")
        if momentum is not None and not 0 <= momentum <= 1:
            raise ValueError(f"{name}: momentum must be in [0, 1] or None, got {momentum}")
        self.eps, self.momentum = float(eps), momentum
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        c = self.num_features
        self.register_parameter("weight", Parameter(np.ones(c, np.float32)) if affine else None)
        self.register_parameter("bias", Parameter(np.zeros(c, np.float32))
                                if affine and bias else None)
        if self.track_running_stats:
            self.register_buffer("running_mean", np.zeros(c, np.float32))
            self.register_buffer("running_var", np.ones(c, np.float32))
            self.register_buffer("num_batches_tracked", np.array(0, np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def folded(self, conv_weight, conv_bias=None):
        """(weight, bias) of a convolution that computes bn(conv(x)) in eval mode:
        w * gamma/sqrt(running_var + eps) per output channel, and the shifted bias
        (fold_factors in float64; the weight scaled in one pass in its own dtype)."""
        dt = conv_weight.dtype
        scale, shift = self.fold_factors(conv_bias, np.float64)
        factor = scale.astype(dt).reshape((-1,) + (1,) * (conv_weight.ndim - 1))
        w = np.multiply(conv_weight, factor, dtype=dt)
        return w, shift.astype(dt)

    def fold_factors(self, conv_bias=None, dtype=np.float32):
        """(scale, shift) with bn(conv(x)) = conv(x) * scale + shift per output channel in
        eval mode (conv_bias folded in too), computed in float64, returned in dtype
        (read-only: the layer keeps them while its parameters, statistics and conv_bias
        are unchanged, functional.batch_norm_fold's cache)."""
        cache = self.__dict__.get("_fold_cache")
        if cache is None:
            cache = self.__dict__["_fold_cache"] = {}
        return F.batch_norm_fold(None if self.weight is None else self.weight.data,
                                 None if self.bias is None else self.bias.data,
                                 self.running_mean, self.running_var, self.eps, conv_bias,
                                 dtype, cache=cache)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked = np.array(0, np.int64)

    def _input(self, x):
        name = type(self).__name__
        x = _shape.as_input(name, x, 4)
        _shape.check_channels(name, x, self.num_features)
        return x

    def output_shape(self, input_shape):
        """The input shape (N, C, H, W)."""
        return _shape.as_shape(type(self).__name__, input_shape, 4, self.num_features)

    def forward(self, x):
        """x (N, C, H, W) -> (N, C, H, W)."""
        return self._forward(x, False)

    def forward_relu(self, x):
        """relu(self(x)) in one pass over the data (Conv-BN-ReLU blocks); its backward
        masks the gradient where the ReLU passed nothing.  x (N, C, H, W) -> same."""
        if isinstance(x, Tensor):
            return self._record(self._forward, x, True)
        return self._forward(x, True)

    def forward_relu6(self, x):
        """relu6(self(x)) (clamped to [0, 6]) in one pass over the data (MobileNet's
        Conv-BN-ReLU6 blocks); its backward passes the gradient where 0 < y < 6.
        x (N, C, H, W) -> (N, C, H, W)."""
        if isinstance(x, Tensor):
            return self._record(self._forward, x, "relu6")
        return self._forward(x, "relu6")

    def _forward(self, x, relu):
        x = self._input(x)
        batch_stats = self.training or not self.track_running_stats
        n = x.size // x.shape[1]
        if batch_stats and n == 1:      # torch too: eval without running stats is batch stats
            raise ValueError(f"{type(self).__name__}: expected more than 1 value per channel when "
                             f"training, got input shape {x.shape}")
        w = self.weight.data if self.weight is not None else None
        b = self.bias.data if self.bias is not None else None
        y, ctx = self._normalize(x, w, b, batch_stats, relu)
        mean, var, n = ctx.mean, ctx.var, ctx.count
        if self.training and self.track_running_stats and n > 0:   # empty batch: no update
            self.num_batches_tracked = np.array(self.num_batches_tracked + 1, np.int64)
            f = (1.0 / float(self.num_batches_tracked)) if self.momentum is None else self.momentum
            unbiased = var * n / (n - 1)
            dt = self.running_mean.dtype
            self.running_mean[...] = ((1 - f) * self.running_mean + f * mean).astype(dt)
            self.running_var[...] = ((1 - f) * self.running_var + f * unbiased).astype(dt)
        return self._remember(y, ctx)

    def _normalize(self, x, w, b, batch_stats, relu):
        return F.batch_norm(x, w, b, self.eps, self.running_mean, self.running_var,
                            batch_stats, relu)

    _leaf = True
    _grad_params = ("weight", "bias")

    def _backward(self, ctx, gy, needs):
        return F.batch_norm_backward(ctx, gy, needs)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


class SyncBatchNorm(BatchNorm2d):
    """Batch normalisation whose statistics span every process of a group
    (torch.nn.SyncBatchNorm's signature, defaults, parameters, buffers and state_dict
    keys): in training, the mean and variance are those of the global batch (every
    rank's part together), and so is the input gradient; the weight and bias gradients
    stay this rank's (DistributedDataParallel averages them).  Equal, up to rounding,
    to BatchNorm2d on the concatenated batch in one process.

    process_group: a ``fastconv.distributed.ProcessGroup``; None (the default) means
    the group of ``fastconv.distributed.init()``.  Outside a distributed job (or in a
    group of one) it computes exactly what BatchNorm2d does, bit for bit.  Every rank
    gathers the others' per-channel values and adds them in rank order, so all ranks
    hold the same bits.

    Input (N, C, *) with at least 2 dims, like torch's ((N, C), (N, C, L), (N, C, H, W),
    ...) -> the same shape.  Training: batch statistics, running_mean / running_var
    updated with ``momentum`` (None: cumulative average) from the unbiased variance of
    the global batch; eval: the running statistics (batch statistics without
    track_running_stats), no communication.

    Where fastconv differs from torch 2.13: torch refuses CPU input in a distributed
    job ("SyncBatchNorm expected input tensor to be on GPU"); fastconv synchronises on
    the CPU, over MPI.  A subclass of BatchNorm2d here (in torch both derive from
    _BatchNorm), so code that handles BatchNorm2d (folding, summaries) handles it too."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, process_group=None, *, bias=True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, bias=bias)
        self.process_group = process_group

    def _input(self, x):
        name = type(self).__name__
        if not isinstance(x, np.ndarray):
            x = np.asarray(x)
        x = _shape.as_input(name, x, max(x.ndim, 2), "(N, C, *)")
        _shape.check_channels(name, x, self.num_features, "(N, {c}, *)")
        return x

    def output_shape(self, input_shape):
        """The input shape (N, C, *)."""
        name = type(self).__name__
        shape = tuple(int(v) for v in input_shape)
        shape = _shape.as_shape(name, shape, max(len(shape), 2), None, "(N, C, *)")
        # forward's channel message (a view of no memory stands in for the input)
        _shape.check_channels(name, np.broadcast_to(np.uint8(0), shape), self.num_features,
                              "(N, {c}, *)")
        return shape

    def forward(self, x):
        """x (N, C, *) -> the same shape."""
        return self._forward(x, False)

    def _normalize(self, x, w, b, batch_stats, relu):
        return F.batch_norm(x, w, b, self.eps, self.running_mean, self.running_var,
                            batch_stats, relu, sync=True, process_group=self.process_group)

    @classmethod
    def convert_sync_batchnorm(cls, module, process_group=None):
        """Replace every BatchNorm2d (SyncBatchNorm included, as torch does) in the tree
        under ``module`` by a SyncBatchNorm with the same settings that shares its
        Parameters and running-statistic arrays (so an optimiser holding them goes on
        training them) and its train/eval mode.  Returns module with its children
        replaced in place, or the new layer when module itself is a BatchNorm2d."""
        out = module
        if isinstance(module, BatchNorm2d):
            out = cls(module.num_features, module.eps, module.momentum, module.affine,
                      module.track_running_stats, process_group,
                      bias=module.bias is not None)
            if module.affine:
                out.weight, out.bias = module.weight, module.bias
            out.running_mean = module.running_mean
            out.running_var = module.running_var
            out.num_batches_tracked = module.num_batches_tracked
            out.train(module.training)
        for name, child in list(module.named_children()):
            out.add_module(name, cls.convert_sync_batchnorm(child, process_group))
        return out


class GroupNorm(Module):
    """Group normalisation (torch.nn.GroupNorm): the channels of each image are split
    into ``num_groups`` groups, each normalised by its own mean and (biased) variance,
    then scaled and shifted per channel.  Independent of the batch (the same in
    training and eval, no running statistics), so it suits batches of one.
    (N, C, *) -> same shape; weight ones, bias zeros (affine=True)."""

    _leaf = True
    _grad_params = ("weight", "bias")

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True):
        super().__init__()
        name = type(self).__name__
        self.num_groups = _shape.positive_int(num_groups, "num_groups", name)
        self.num_channels = _shape.positive_int(num_channels, "num_channels", name)
        if self.num_channels % self.num_groups:
            raise ValueError(f"{name}: num_channels must be divisible by num_groups "
                             f"(num_channels={num_channels}, num_groups={num_groups})")
        if not eps > 0:
            raise ValueError(f"{name}: eps must be > 0, got {eps}")
        self.eps, self.affine = float(eps), bool(affine)
        c = self.num_channels
        self.register_parameter("weight", Parameter(np.ones(c, np.float32)) if affine else None)
        self.register_parameter("bias", Parameter(np.zeros(c, np.float32)) if affine else None)

    def output_shape(self, input_shape):
        """The input shape (N, C, *)."""
        shape = tuple(int(v) for v in input_shape)
        return _shape.as_shape(type(self).__name__, shape, max(len(shape), 2),
                               self.num_channels, "(N, C, *)")

    def forward(self, x):
        """x (N, C, *) -> the same shape."""
        name = type(self).__name__
        if not isinstance(x, np.ndarray):
            x = np.asarray(x)
        x = _shape.as_input(name, x, max(x.ndim, 2), "(N, C, *)")
        _shape.check_channels(name, x, self.num_channels, "(N, {c}, *)")
        if x.size and x.size // self.num_groups == 1:     # torch refuses it too
            raise ValueError(f"{name}: expected more than 1 value per group, got input shape "
                             f"{x.shape} with {self.num_groups} groups")
        w = self.weight.data if self.weight is not None else None
        b = self.bias.data if self.bias is not None else None
        return self._remember(*F.group_norm(x, self.num_groups, w, b, self.eps))

    def _backward(self, ctx, gy, needs):
        return F.group_norm_backward(ctx, gy, needs)

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class InstanceNorm2d(GroupNorm):
    """Instance normalisation (torch.nn.InstanceNorm2d): each (image, channel) plane
    normalised by its own mean and biased variance; ``affine`` (default False, as torch)
    adds a per-channel scale and shift.  GroupNorm with one channel per group.
    (N, C, H, W) or unbatched (C, H, W) -> the same shape.

    track_running_stats=True (torch's semantics exactly): training normalises with the
    instance statistics as above and updates the buffers running_mean / running_var
    (C,) by running = (1 - momentum) * running + momentum * s, s the batch average of
    the per-instance means / unbiased variances (H*W/(H*W - 1) times the biased); eval
    normalises every plane of channel c with running_mean[c], running_var[c] (so 1x1
    planes are fine there).  As in torch 2.13, ``momentum=None`` means a factor of 0 (the
    running statistics stay as they are; InstanceNorm has no cumulative average) and
    num_batches_tracked is in the state_dict but never counts; an empty batch leaves
    the statistics unchanged (torch's become NaN)."""

    _unbatched_ndim = 3

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False,
                 track_running_stats=False):
        super().__init__(num_features, num_features, eps, affine)
        name = type(self).__name__
        if momentum is not None and not 0 <= momentum <= 1:
            raise ValueError(f"{name}: momentum must be in [0, 1] or None, got {momentum}")
        self.num_features, self.momentum = self.num_channels, momentum
        self.track_running_stats = bool(track_running_stats)
        c = self.num_features
        tracked = self.track_running_stats
        self.register_buffer("running_mean", np.zeros(c, np.float32) if tracked else None)
        self.register_buffer("running_var", np.ones(c, np.float32) if tracked else None)
        self.register_buffer("num_batches_tracked", np.array(0, np.int64) if tracked else None)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked = np.array(0, np.int64)

    def forward(self, x):
        """x (N, C, H, W) -> the same shape."""
        if not isinstance(x, np.ndarray):
            x = np.asarray(x)
        name = type(self).__name__
        x = _shape.as_input(name, x, 4)
        _shape.check_channels(name, x, self.num_channels)
        w = self.weight.data if self.weight is not None else None
        b = self.bias.data if self.bias is not None else None
        if not (self.training or not self.track_running_stats):
            # eval with running statistics: a per-channel affine map, BatchNorm2d's eval
            return self._remember(*F.batch_norm(x, w, b, self.eps, self.running_mean,
                                                self.running_var, training=False))
        hw = x.shape[2] * x.shape[3]
        if hw == 1:                                 # torch refuses it too
            raise ValueError(f"{name}: expected more than 1 spatial element per plane, got "
                             f"input shape {x.shape}")
        y, ctx = F.group_norm(x, self.num_groups, w, b, self.eps)
        if self.training and self.track_running_stats and x.shape[0] > 0 and \
                self.momentum is not None:
            # torch: batch_norm over the (1, N*C, H*W) view with the running statistics
            # repeated N times, then their average over N, i.e. the statistics' average
            f = float(self.momentum)
            var = np.maximum(1.0 / (ctx.invstd * ctx.invstd) - self.eps, 0) * (hw / (hw - 1))
            dt = self.running_mean.dtype
            self.running_mean[...] = ((1 - f) * self.running_mean + f * ctx.mean.mean(axis=0)
                                      ).astype(dt)
            self.running_var[...] = ((1 - f) * self.running_var + f * var.mean(axis=0)
                                     ).astype(dt)
        return self._remember(y, ctx)

    def _backward(self, ctx, gy, needs):
        if isinstance(ctx, F.BatchNormCtx):
            return F.batch_norm_backward(ctx, gy, needs)
        return F.group_norm_backward(ctx, gy, needs)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, " \
               f"affine={self.affine}, track_running_stats={self.track_running_stats}"


class LayerNorm(Module):
    """Layer normalisation over the trailing ``normalized_shape`` dims (torch.nn.LayerNorm;
    on NCHW, normalized_shape (C, H, W) or (W,) ...), with an elementwise ``weight`` and
    ``bias`` of that shape (elementwise_affine)."""

    _leaf = True
    _grad_params = ("weight", "bias")

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True):
        super().__init__()
        name = type(self).__name__
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else \
            tuple(normalized_shape)
        self.normalized_shape = tuple(_shape.positive_int(v, "normalized_shape", name)
                                      for v in shape)
        if not eps > 0:
            raise ValueError(f"{name}: eps must be > 0, got {eps}")
        self.eps, self.elementwise_affine = float(eps), bool(elementwise_affine)
        self.register_parameter("weight", Parameter(np.ones(self.normalized_shape, np.float32))
                                if elementwise_affine else None)
        self.register_parameter("bias", Parameter(np.zeros(self.normalized_shape, np.float32))
                                if elementwise_affine and bias else None)

    def output_shape(self, input_shape):
        """The input shape (*, *normalized_shape)."""
        shape = tuple(int(v) for v in input_shape)
        k = len(self.normalized_shape)
        if shape[len(shape) - k:] != self.normalized_shape:
            raise ValueError(f"{type(self).__name__}: expected input with shape "
                             f"[*, {', '.join(map(str, self.normalized_shape))}], got {shape}")
        return shape

    def forward(self, x):
        name = type(self).__name__
        if not isinstance(x, np.ndarray):
            x = np.asarray(x)
        x = _shape.as_input(name, x, max(x.ndim, 1), "(*, normalized_shape)")
        self.output_shape(x.shape)
        w = self.weight.data if self.weight is not None else None
        b = self.bias.data if self.bias is not None else None
        return self._remember(*F.layer_norm(x, self.normalized_shape, w, b, self.eps))

    def _backward(self, ctx, gy, needs):
        return F.layer_norm_backward(ctx, gy, needs)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, " \
               f"elementwise_affine={self.elementwise_affine}"
