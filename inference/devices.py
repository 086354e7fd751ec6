"""The devices ONNX Runtime sessions accept (:mod:`inference.runtime`), in a module light enough
for the registry and the command line to import at start-up."""

DEVICES = ("auto", "cuda", "cpu")
