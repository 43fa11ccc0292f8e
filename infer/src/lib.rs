//! fmap-infer: split ONNX detectors (no GStreamer).
