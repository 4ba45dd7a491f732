"""``lstmkit.export``: ONNX export of a model folder, verified in ONNX Runtime before the file is written.

``export_onnx(model_dir, out_path)`` writes the graphs of the model's task, its ``predict`` graph at ``out_path``
and any other beside it (the step graph, a text model's ``NAME.tokenizer.json``). For a classifier:

``out_path`` (the *predict graph*)
    inputs ``input`` float32 (N, L, F) of raw values, as the data source gives them, and ``lengths``
    int64 (N,), each in 1..L; outputs ``probabilities`` and ``logits``, float32 (N, C). N and L are
    dynamic. Steps past a sequence's length are ignored, whatever they hold: the LSTM operator gets the
    lengths as its ``sequence_lens`` (a ``Scan`` loop holds the state there and outputs zeros), the conv
    front end zeroes them before every convolution, and the ``mean``/``max`` readouts mask them.

``out_path`` with the suffix ``.step.onnx`` (the *step graph*, only for models that can stream)
    inputs ``input`` (N, L, F), ``lengths`` (N,), ``h0`` (num_layers, N, H_out) and ``c0`` (num_layers, N, H),
    H_out being ``proj_size`` when the LSTM projects, else H; outputs ``probabilities`` and ``logits``
    (N, L, C) after every step (the top layer's h_t through the head; steps past a length hold nothing
    useful), and the states ``h_n``, ``c_n`` after each sequence's last real step. Feeding ``h_n``, ``c_n``
    back as the next call's ``h0``, ``c0`` continues the streams: this is what ``lstmkit serve`` runs for
    streaming sessions (the metadata's ``output_size`` is H_out).

The model folder's standardizer is folded into both graphs (``(x - mean) / std`` in front), so they take
the same raw inputs as ``LoadedModel.predict_proba``. Each file carries ``lstmkit`` metadata (label names,
input size, the standardizer's presence, the step file's name) in its ``metadata_props``.

The graphs are written with ``onnx.helper``, not traced, and every LSTM variant exports (``lstm_graph``):
where the standard ONNX ``LSTM`` node is exact, each layer is one such node (weights reordered from PyTorch's
gate order i, f, g, o to ONNX's i, o, f, c; the six activations of ``lstmkit.nn.ACTIVATIONS`` as its
``activations``; peepholes as ``P`` in ONNX's order p_i, p_o, p_f; coupled gates as ``input_forget``); an LSTM
with layer norm, ``proj_size``, ``cell_clip`` or zoneout runs each layer and direction as a ``Scan`` over the
cell written in standard ops (``scan_lstm``); residual stacking and the merge modes are ops between layers;
recurrent dropout and weight drop are the identity in evaluation, and the initialisations (``forget_bias``,
``chrono_init``) are in the weights. What cannot be written is refused with an ``ExportError`` that names it:
a task without an exporter (``registry.EXPORTER_MODULES``), a ``[model]`` key or a module the exporter was
not written for, an activation a user registered (ONNX has no op for it), a variant or parameter kind added to
the engine later.

Before anything is written, ONNX Runtime runs the graphs against PyTorch on real inputs (samples of the
model's dataset when it loads without a download, else random inputs with the training statistics):
a full-length batch, a padded batch of random lengths compared with each sequence run alone, and for the
step graph a stream fed in chunks. The largest absolute difference of probabilities and logits must be
at most ``tolerance`` (1e-4), or nothing is written. Files are written to a temporary name and renamed.

Example::

    result = export_onnx("runs/digits/model", "digits.onnx")
    result.max_abs_diff      # e.g. 4.8e-07

Other tasks write other sets (``registry`` lists the exporters): a seq2seq model its encoder (``out_path``),
its decoder step graph (``NAME.decoder_step.onnx``) and its vocabularies (``NAME.vocab.json``), with
``seq2seq_decode`` running greedy and beam search over them with numpy and onnxruntime only
(``seq2seq_graph``, ``seq2seq_verify``); a frames model one graph, frames and lengths in, forecast frames out,
its ConvLSTM and its rollout each an ONNX ``Scan`` (``frames_graph``, ``frames_verify``). ``model_proto`` and
``runtime`` hold what these exporters share (a checked ``ModelProto`` with metadata; running a graph in ONNX
Runtime and ``onnx.reference``; refusing a disagreement).

Modules: ``graph`` (the node builder), ``lstm_graph`` (the LSTM stack, for every task's graphs:
``lstm_stack(g, lstm, sequence (L, N, F), sequence_lens, initial=None)`` -> (outputs (L, N, D * H_out), each
layer's final h, each layer's final c)), ``scan_lstm`` (one layer direction as a ``Scan``), ``classifier_graph``
(the classifier's graphs and what can export), ``regressor_graph``, ``forecaster_graph``, ``text_graph``
(text classifier, tagger, char-lm: token ids in, the tokenizer beside) and ``next_symbols_graph`` (the other
tasks' graphs, their ports as ``Task.schema`` declares them), ``common`` (what they share: ports, head,
standardizer, metadata, ``verified_set``), ``parity`` (the task-independent checks against PyTorch), ``verify``
(the classifier's checks), ``writer`` (build, verify, write; read the metadata back), ``registry`` (which
exporter writes which ``[model] task``; the files of a set), ``errors``.
"""

from lstmkit.export.classifier_graph import TOLERANCE, build_onnx_graphs, build_verified_graphs, check_exportable
from lstmkit.export.errors import ExportError, ExportResult, step_path_for
from lstmkit.export.graph import META_KEY
from lstmkit.export.lstm_graph import ONNX_ACTIVATIONS
from lstmkit.export.verify import standardize, verify_onnx
from lstmkit.export.registry import ExportRequest, GraphSet, exporter_for, register_exporter
from lstmkit.export.writer import export_onnx, read_onnx_meta

__all__ = [
    "META_KEY",
    "ONNX_ACTIVATIONS",
    "TOLERANCE",
    "ExportError",
    "ExportRequest",
    "ExportResult",
    "GraphSet",
    "build_onnx_graphs",
    "build_verified_graphs",
    "check_exportable",
    "export_onnx",
    "exporter_for",
    "read_onnx_meta",
    "register_exporter",
    "standardize",
    "step_path_for",
    "verify_onnx",
]
