"""Stateless operations, one contract for all of them.

Every op returns ``(out, ctx)``: ``ctx`` is a small typed record (a NamedTuple per
family) of what its backward needs.  Every ``op_backward(ctx, grad_out, needs=None)``
returns the gradients w.r.t. the op's array inputs, in input order, with None where
``needs`` (one bool per input; None: all) says False.  Layers in ``fastconv.nn`` own
parameters, call these, and accumulate the parameter gradients in one place
(``Module.backward``).

Shapes follow PyTorch (NCHW).  Arguments are assumed validated by ``fastconv._shape``
helpers (the layers do that), except what depends on the input's shape, which is
checked here.
"""
from .activation import (ACTIVATIONS, ActivationCtx, AddCtx, DropoutCtx, PReluCtx, ReluCtx,
                         activation, activation_backward, add, add_backward, add_relu_, dropout,
                         dropout2d, dropout2d_backward, dropout_backward, prelu,
                         prelu_backward, relu, relu_backward)
from .conv import (Conv2dCtx, ConvTranspose2dCtx, conv2d, conv2d_backward, conv_transpose2d,
                   conv_transpose2d_backward, inference_plan)
from .linear import LinearCtx, linear, linear_backward
from .loss import (CrossEntropyCtx, LossCtx, bce_with_logits, bce_with_logits_backward,
                   cross_entropy, cross_entropy_backward, l1_loss, l1_loss_backward, mse_loss,
                   mse_loss_backward, nll_loss, nll_loss_backward, smooth_l1_loss,
                   smooth_l1_loss_backward)
from .norm import (BatchNormCtx, GroupNormCtx, LayerNormCtx, batch_norm, batch_norm_backward,
                   batch_norm_fold, group_norm, group_norm_backward, layer_norm,
                   layer_norm_backward, sync_channel_stats, sync_channel_sums)
from .optim import adam_, sgd_
from .pad import PadCtx, pad, pad_backward
from .pool import (AdaptiveAvgPool2dCtx, AvgPool2dCtx, MaxPool2dCtx, MaxUnpool2dCtx,
                   adaptive_avg_pool2d, adaptive_avg_pool2d_backward, adaptive_max_pool2d,
                   adaptive_max_pool2d_backward, avg_pool2d, avg_pool2d_backward, max_pool2d,
                   max_pool2d_backward, max_unpool2d, max_unpool2d_backward, unpool_output_size)
from .upsample import (PixelShuffleCtx, UpsampleCtx, pixel_shuffle, pixel_shuffle_backward,
                       pixel_unshuffle, pixel_unshuffle_backward, upsample, upsample_backward)
from ._common import channel_sum

__all__ = [
    "conv2d", "conv2d_backward", "conv_transpose2d", "conv_transpose2d_backward",
    "max_pool2d", "max_pool2d_backward", "max_unpool2d", "max_unpool2d_backward",
    "unpool_output_size", "avg_pool2d", "avg_pool2d_backward",
    "adaptive_avg_pool2d", "adaptive_avg_pool2d_backward", "adaptive_max_pool2d",
    "adaptive_max_pool2d_backward", "batch_norm", "batch_norm_backward", "batch_norm_fold",
    "sync_channel_stats", "sync_channel_sums",
    "group_norm", "group_norm_backward", "layer_norm", "layer_norm_backward",
    "relu", "relu_backward", "activation", "activation_backward", "prelu", "prelu_backward",
    "add", "add_backward", "add_relu_", "dropout", "dropout_backward",
    "linear", "linear_backward", "upsample", "upsample_backward", "pixel_shuffle",
    "pixel_shuffle_backward", "pixel_unshuffle", "pixel_unshuffle_backward", "dropout2d",
    "dropout2d_backward", "pad", "pad_backward",
    "cross_entropy", "cross_entropy_backward", "nll_loss", "nll_loss_backward",
    "bce_with_logits", "bce_with_logits_backward", "mse_loss", "mse_loss_backward", "l1_loss",
    "l1_loss_backward", "smooth_l1_loss", "smooth_l1_loss_backward", "channel_sum", "sgd_", "adam_",
]
