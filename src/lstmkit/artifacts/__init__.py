"""What a trained model leaves behind: the model folder (safetensors + manifest, checked on load, never
unpickled; ``model_folder``) and its ONNX export verified in ONNX Runtime (``export``)."""
