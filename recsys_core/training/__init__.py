"""Shared torch training machinery.

- :mod:`recsys_core.training.trainer`: ``TrainConfig`` fields and ``train_loop`` (device, AMP,
  optimiser, clipping, early stopping on valid NDCG@10 with best-weight restore, progress and
  cancellation); its module docstring documents the API.
- :mod:`recsys_core.training.samplers`: device-side negative samplers.
- :mod:`recsys_core.training.losses`: BPR, BCE and multinomial losses with balance reweighting.
- :mod:`recsys_core.training.pairwise`: epoch batches of (user, positive, negatives, weight).
- :mod:`recsys_core.training.foldin`: least-squares fold-in of new histories.
"""
