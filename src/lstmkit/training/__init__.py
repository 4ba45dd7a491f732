"""Training: the one loop every task trains in, its callbacks, checkpoints and data parallelism.

- ``trainer``: ``Trainer`` (backpropagation through time over ``Batches``, resumable state), the optimiser
  and schedule factories, seeding and the runtime settings;
- ``callbacks``: progress, the epoch log, checkpoints, early stopping, TensorBoard, keeping the best epoch;
- ``distributed``: data-parallel processes (``torchrun`` or ``--nproc``).
"""
