"""Qt-free, torch-free: labels format, atomic files; model bundles and ONNX Runtime (later issues)."""
