"""What a trained model leaves behind: the model folder (safetensors + manifest, checked on load, never
unpickled; ``model_folder``) and the file-reading guards (``safe_files``); the ONNX export is ``lstmkit.export``."""
