"""The architecture space: elastic MBConv supernet, Architecture genotypes, ONNX export, layer statistics."""
