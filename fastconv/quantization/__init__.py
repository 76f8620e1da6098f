"""int8 post-training quantisation for inference (layer 5: built on the layers, the
functional ops and the _quant kernels; never imports data, train or the command line).

    qm = fastconv.quantize(model.eval(), calibration_batches, report=True)
    logits = qm(x)                      # float32 NCHW in, float32 out
    print(qm.report)                    # per-layer precision and error
    qm.save("model_int8.npz")
"""
from .model import (QTensor, QuantizedModel, QuantReport, is_quantized_file, load_quantized,
                    quantize)
from .observers import OBSERVERS, MinMaxObserver, PercentileObserver, qparams

__all__ = ["quantize", "QuantizedModel", "QuantReport", "QTensor", "load_quantized",
           "is_quantized_file", "MinMaxObserver", "PercentileObserver", "OBSERVERS",
           "qparams"]
