"""One cost formula per registered model, calibrated by measurements on this machine.

Each entry of :data:`COSTS` gives, for a model's config and the training part's sizes
(:class:`~recsys_core.estimate.DataShape`): fit seconds, peak working memory on the model's
device, saved size, and the seconds to score one user-item pair at evaluation. A test checks
that every key of the model registry has an entry.

How the constants were measured
-------------------------------
On this project's 2-core CPU machine (torch 2.13 CPU build), with
``benchmarks/calibrate_estimates.py --users 3000 --items 2000 --history 50 --threads 1``:
every model fitted for one epoch (``epochs=1``) in a fresh process on the synthetic 3,000 users
x 2,000 items x ~145k interactions, peak memory as the RSS growth sampled every 20 ms
(``recsys_core.bench.peak_memory``). The machine was shared (load average 17-28 on 2 cores),
so the constants come from the fits' CPU seconds, not their wall time: wall seconds on an idle
machine with 2 threads = CPU seconds of 1 thread / :data:`THREAD_SPEEDUP`. Each time constant
is ``measured CPU seconds / THREAD_SPEEDUP / work units`` (units named beside it); memory
formulas count the tensors the fit holds (float32 = 4 bytes) and were checked against the RSS
growth. Calibrated so: MostPopular, ItemKNN, RP3beta, EASE, iALS, BPR, NeuMF, Mult-VAE,
LightGCN, SASRec (one size only: the time of a size far from it can be off by more than 2x,
which ``bench --scale`` measures). Not calibrated yet (the busy machine did not finish their
fits before the deadline of this change): GRU4Rec and multi-interest (they share SASRec's
constant), two-tower, content and fusion, whose constants are first-principles guesses. Times
on a CUDA device are divided by :data:`GPU_SPEEDUP` (not calibrated: no GPU on this machine).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from recsys_core.estimate import DataShape, ModelCost
from recsys_core.memory import format_gb

F = 4  # bytes per float32
#: Dense float32 matrix products (BLAS sgemm, 2 threads): seconds per multiply-add.
SEC_PER_GEMM_MAC = 1.0 / 40e9
#: Cholesky factorisation + inverse of an n x n matrix: seconds per n^3.
SEC_PER_CHOL_N3 = 1.0 / 20e9
#: iALS's gathers, batched products and solves: seconds per multiply-add of its formula
#: (3,000 x 2,000 x 145k, 64 factors, 15 sweeps: 1.65 CPU s).
SEC_PER_IALS_MAC = 4.6 * 4 / 40e9
#: Sparse (CSR) x dense products in torch: seconds per (stored entry x dense column).
SEC_PER_SPMM = 1.0 / 4e8
#: Reading every stored interaction once (counts, re-weighting, building CSR/CSC copies).
SEC_PER_NNZ = 6e-8
#: A training step of the torch models: seconds per (sample x embedding-width MAC), forward and
#: backward with Adam, per model family (sample = one positive pair or one sequence position).
SEC_PER_SAMPLE_DIM = {
    "bpr": 2.6e-7,  # 1 epoch, dim 64: 4.2 CPU s (a fixed cost per fit folded in: over-estimates)
    "neumf": 4e-8,  # 1 epoch, 4 negatives, width 320: 7.8 CPU s
    "seq": 6.6e-10,  # SASRec, 1 epoch, hidden 64, full softmax over 2,000 items: 13.2 CPU s
    "vae": 3.2e-10,  # 1 epoch of 3,000 users x 2,000 items, hidden 600: 5.4 CPU s
    "tower": 5e-9,
}
#: Score of one user-item pair at evaluation: a dot product of d floats, or a sparse row.
SEC_PER_SCORE_DIM = 1.0 / 10e9
GPU_SPEEDUP = 10.0
#: What a torch training loop holds beside its tensors (autograd graph, optimiser and allocator
#: workspace): the RSS growth of one-epoch fits was 100-120 MB above the counted tensors for
#: BPR, LightGCN and Mult-VAE on 3,000 x 2,000.
TORCH_FIT_BYTES = 110 * 2**20
#: Measured CPU seconds of one thread / this = wall seconds with 2 threads on an idle machine.
THREAD_SPEEDUP = 1.5


Formula = Callable[[Any, DataShape, str], ModelCost]


@dataclass(frozen=True)
class CostEntry:
    """A model's cost formula and the settings to try, in order, when it does not fit.

    ``knobs``: (config field, smallest value) pairs halved towards the minimum by
    :func:`nearest_fit`; ``alternative``: a model to suggest instead.
    """

    formula: Formula
    knobs: tuple[tuple[str, int], ...] = ()
    alternative: str = "ials"
    fewer_items: bool = False


def _device_time(seconds: float, device: str) -> float:
    return seconds / GPU_SPEEDUP if device == "cuda" else seconds


def _cost(seconds: float, peak: float, state: float, device: str, score: float) -> ModelCost:
    return ModelCost(_device_time(seconds, device), int(peak), int(state), score)


def _csr_bytes(nnz: int, copies: int = 1) -> float:
    return copies * nnz * (F + F) + copies * 8 * 1000  # indices + values (+ row pointers)


# ----- baselines and item-item models ---------------------------------------------------------
def _popular(cfg: Any, s: DataShape, device: str) -> ModelCost:
    return _cost(SEC_PER_NNZ * s.n_train, _csr_bytes(s.n_train), F * s.n_items, device, 1e-9)


def _random(cfg: Any, s: DataShape, device: str) -> ModelCost:
    return _cost(0.01, F * s.n_items, 8, device, 2e-9)


def _item_knn_like(cfg: Any, s: DataShape, device: str) -> ModelCost:
    """ItemKNN / RP3beta (``blockwise_topk``): X^T [items x users] times dense column blocks
    of X [users x width], width = 2^25 / n_items; top-k per column kept."""
    from recsys_core.models.itemknn import BLOCK_FLOATS

    width = max(1, min(s.n_items, BLOCK_FLOATS // max(s.n_items, 1)))
    seconds = SEC_PER_SPMM * s.n_train * s.n_items + 4 * SEC_PER_NNZ * s.n_train
    peak = (
        F * (s.n_users * width + 3 * s.n_items * width)  # dense block, product, transpose
        + _csr_bytes(s.n_train, 4)  # X, X^T (CSR tensor), X as CSC, weighted copy
        + 24 * cfg.topk * s.n_items  # kept COO triplets
    )
    state = 12 * cfg.topk * s.n_items
    score = SEC_PER_SCORE_DIM * cfg.topk * s.mean_history / max(s.n_items, 1) * 50
    return _cost(seconds, peak, state, device, score)


def _ease(cfg: Any, s: DataShape, device: str) -> ModelCost:
    """Gram matrix by dense user blocks (U I^2 MACs), Cholesky and inverse (I^3); or the
    Woodbury path when users are fewer (U^2 I + U^3 + U I^2). Peak: EASE.peak_bytes."""
    from recsys_core.models.ease import EASE

    u, i = s.n_users, s.n_items
    if u < i:
        seconds = SEC_PER_GEMM_MAC * (u * u * i + u * i * i) + SEC_PER_CHOL_N3 * u**3
    else:
        seconds = SEC_PER_GEMM_MAC * u * i * i + SEC_PER_CHOL_N3 * i**3
    peak = EASE(cfg, device="cpu").peak_bytes(u, i)
    return _cost(seconds, peak, F * i * i, device, SEC_PER_SCORE_DIM * s.mean_history)


# ----- factor models --------------------------------------------------------------------------
def _ials(cfg: Any, s: DataShape, device: str) -> ModelCost:
    """Per sweep: cg applies A_r in O(nnz d) per step; cholesky builds [rows, d, d] systems
    (nnz d^2) and factors them ((U + I) d^3 / 3). The last user half step is exact."""
    d, rows = cfg.factors, s.n_users + s.n_items
    cg = 2 * s.n_train * d * (cfg.cg_steps + 1) + rows * d * d
    exact = 2 * s.n_train * d * d + rows * d**3 / 3
    per_sweep = cg if cfg.solver == "cg" else exact
    seconds = SEC_PER_IALS_MAC * (cfg.iterations * per_sweep + exact / 2)
    block = min(rows, 2**16) * d * d  # batched systems of the exact solve
    peak = 2 * (F * (6 * rows * d + block) + _csr_bytes(s.n_train, 4) + 8 * s.n_train * 2)
    return _cost(seconds, peak, F * rows * d, device, SEC_PER_SCORE_DIM * d)


def _pairwise(
    unit: str, width: Callable[[Any], int], negatives: Callable[[Any], int] = lambda c: 1
):
    """BPR / NeuMF: epochs x positives x (1 + negatives) x width; Adam keeps 3 copies."""

    def formula(cfg: Any, s: DataShape, device: str) -> ModelCost:
        w = width(cfg)
        samples = s.n_train * (1 + negatives(cfg))
        seconds = cfg.epochs * samples * w * SEC_PER_SAMPLE_DIM[unit] + SEC_PER_NNZ * s.n_train
        params = (s.n_users + s.n_items) * w
        peak = F * 4 * params + _csr_bytes(s.n_train, 3) + 16 * cfg.batch_size * w * 8
        peak += TORCH_FIT_BYTES
        return _cost(seconds, peak, F * params, device, SEC_PER_SCORE_DIM * w)

    return formula


def _lightgcn(cfg: Any, s: DataShape, device: str) -> ModelCost:
    """Every step propagates the whole graph: steps x layers x 2 nnz x dim (sparse x dense)."""
    steps = cfg.epochs * -(-s.n_train // cfg.batch_size)
    prop = (cfg.layers + 1) * 2 * s.n_train * cfg.dim
    # 1 epoch on 3,000 x 2,000 x 145k: 5.5 CPU s
    seconds = steps * prop * SEC_PER_SPMM * 0.9 + SEC_PER_NNZ * s.n_train
    params = (s.n_users + s.n_items) * cfg.dim
    peak = F * params * (4 + 2 * (cfg.layers + 1)) + _csr_bytes(2 * s.n_train, 2)
    peak += TORCH_FIT_BYTES
    return _cost(seconds, peak, F * params, device, SEC_PER_SCORE_DIM * cfg.dim)


def _multvae(cfg: Any, s: DataShape, device: str) -> ModelCost:
    """Per epoch: sparse input layer (nnz x hidden) and the dense output layer over every item
    (users x items x hidden), forward and backward."""
    out = s.n_users * s.n_items * cfg.hidden
    seconds = cfg.epochs * (out + s.n_train * cfg.hidden) * SEC_PER_SAMPLE_DIM["vae"] * 3
    params = 2 * s.n_items * cfg.hidden + 2 * cfg.hidden * cfg.latent
    peak = F * (4 * params + 6 * cfg.batch_size * s.n_items) + _csr_bytes(s.n_train, 2)
    peak += TORCH_FIT_BYTES
    return _cost(seconds, peak, F * params, device, SEC_PER_SCORE_DIM * cfg.hidden)


def _sequence(cfg: Any, s: DataShape, device: str) -> ModelCost:
    """SASRec / GRU4Rec / multi-interest: every position of every window (users x min(max_len,
    history)) through the network (hidden^2 per layer) and, with the full loss, scored against
    every item (hidden x items); sampled losses score n_sampled."""
    h = cfg.hidden
    positions = min(s.n_train, s.n_users * cfg.max_len)
    targets = s.n_items if getattr(cfg, "loss", "full") in ("full", "ce") else cfg.n_sampled
    blocks = getattr(cfg, "n_blocks", getattr(cfg, "n_layers", 1))
    per_epoch = positions * (4 * blocks * h * h + targets * h)
    seconds = cfg.epochs * per_epoch * SEC_PER_SAMPLE_DIM["seq"] + SEC_PER_NNZ * s.n_train
    params = s.n_items * h
    window = cfg.batch_size * cfg.max_len
    peak = F * (4 * params + window * (targets + 8 * blocks * h)) + 16 * s.n_train
    peak += TORCH_FIT_BYTES
    return _cost(seconds, peak, F * (params + 8 * blocks * h * h), device, SEC_PER_SCORE_DIM * h)


def _twotower(cfg: Any, s: DataShape, device: str) -> ModelCost:
    """Per epoch: every interaction through both towers (hidden x dim MLPs) and scored against
    the batch (in-batch negatives) or n_sampled shared ones."""
    negatives = cfg.n_sampled if cfg.loss == "sampled" else cfg.batch_size
    per_epoch = s.n_train * (4 * cfg.hidden * cfg.dim + negatives * cfg.dim)
    seconds = cfg.epochs * per_epoch * SEC_PER_SAMPLE_DIM["tower"] + SEC_PER_NNZ * s.n_train * 4
    params = (s.n_users + s.n_items) * cfg.dim + 4 * cfg.hidden * cfg.dim
    peak = F * (4 * params + cfg.batch_size * negatives * 3) + _csr_bytes(s.n_train, 3)
    peak += TORCH_FIT_BYTES
    return _cost(seconds, peak, F * params, device, SEC_PER_SCORE_DIM * cfg.dim)


def _content(cfg: Any, s: DataShape, device: str) -> ModelCost:
    """TF-IDF + SVD of the item side table (items x text_dims), profiles from the history."""
    seconds = SEC_PER_NNZ * s.n_train * 2 + s.n_items * cfg.text_dims * 2e-6
    peak = F * s.n_items * (cfg.text_dims + 64) * 3 + _csr_bytes(s.n_train, 2)
    score = SEC_PER_SCORE_DIM * (cfg.text_dims + 32)
    return _cost(seconds, peak, F * s.n_items * (cfg.text_dims + 32), device, score)


def _fusion(cfg: Any, s: DataShape, device: str) -> ModelCost:
    """Each component fitted twice (on the weight-learning part, then on everything) with its
    default config, plus the weight grid over held-out users; peak = the largest component."""
    from recsys_core.models import get_model

    costs = [COSTS[key].formula(get_model(key).Config(), s, device) for key in cfg.components]
    grid = len(cfg.components) * cfg.max_valid_users * s.n_items
    seconds = 2 * sum(c.fit_seconds for c in costs) + grid * 1e-8
    peak = max(c.peak_bytes for c in costs) + sum(c.state_bytes for c in costs) + F * grid
    return ModelCost(
        seconds,
        int(peak),
        int(sum(c.state_bytes for c in costs)),
        sum(c.score_seconds_per_user_item for c in costs),
    )


COSTS: dict[str, CostEntry] = {
    "random": CostEntry(_random),
    "most_popular": CostEntry(_popular),
    "itemknn": CostEntry(_item_knn_like, knobs=(("topk", 10),), fewer_items=True),
    "rp3beta": CostEntry(_item_knn_like, knobs=(("topk", 10),), fewer_items=True),
    "ease": CostEntry(_ease, fewer_items=True),
    "ials": CostEntry(_ials, knobs=(("factors", 8),), alternative="most_popular"),
    "bpr": CostEntry(_pairwise("bpr", lambda c: c.dim), knobs=(("dim", 8), ("batch_size", 256))),
    "neumf": CostEntry(
        _pairwise(
            "neumf", lambda c: c.mf_dim + c.mlp_dim + sum(c.mlp_layers), lambda c: c.n_negatives
        ),
        knobs=(("batch_size", 256), ("mf_dim", 8), ("mlp_dim", 8)),
    ),
    "lightgcn": CostEntry(_lightgcn, knobs=(("dim", 8),)),
    "multvae": CostEntry(_multvae, knobs=(("batch_size", 8), ("hidden", 64)), fewer_items=True),
    "sasrec": CostEntry(_sequence, knobs=(("batch_size", 4), ("max_len", 10), ("hidden", 16))),
    "gru4rec": CostEntry(_sequence, knobs=(("batch_size", 4), ("max_len", 10), ("hidden", 16))),
    "multiinterest": CostEntry(
        _sequence, knobs=(("batch_size", 4), ("max_len", 10), ("hidden", 16))
    ),
    "twotower": CostEntry(_twotower, knobs=(("batch_size", 64), ("hidden", 32), ("dim", 8))),
    "content": CostEntry(_content, knobs=(("text_dims", 8),), alternative="most_popular"),
    "fusion": CostEntry(_fusion, alternative="ials"),
}


def nearest_fit(key: str, config: Any, shape: DataShape, device: str, budget: int) -> str:
    """The nearest setting whose model peak fits ``budget`` bytes: the first knob halved until
    it fits (then the next knob), or fewer items, and another model that fits."""
    entry = COSTS[key]
    tips: list[str] = []
    budget = max(budget, 0)
    for name, low in entry.knobs:
        value = getattr(config, name)
        while value > low:
            value = max(low, value // 2)
            trial = dataclasses.replace(config, **{name: value})
            if entry.formula(trial, shape, device).peak_bytes <= budget:
                tips.append(f"{name}={value}")
                break
        if tips:
            break
    if entry.fewer_items:
        most = _most_items(entry, config, shape, device, budget)
        if most >= 2:
            tips.append(
                f"keep at most {most:,} items (raise the minimum interactions per item: import "
                "option min_item_interactions, CLI --min-item)"
                + (f", with max_items={most:,}" if key == "ease" else "")
            )
    alt = COSTS.get(entry.alternative)
    if alt is not None and alt is not entry:
        from recsys_core.models import get_model

        alt_peak = alt.formula(get_model(entry.alternative).Config(), shape, device).peak_bytes
        if alt_peak <= budget:
            tips.append(f"use {entry.alternative} (needs about {format_gb(alt_peak)})")
    if not tips:
        return "a machine with more memory, or a smaller dataset (fewer users or items)"
    return "; or ".join(tips)


def _most_items(entry: CostEntry, config: Any, shape: DataShape, device: str, budget: int) -> int:
    """The most items whose peak fits ``budget`` (bisection; interactions scale with items)."""

    def peak(n_items: int) -> int:
        share = n_items / shape.n_items
        trial = dataclasses.replace(
            shape, n_items=n_items, n_train=max(1, int(shape.n_train * share))
        )
        return entry.formula(config, trial, device).peak_bytes

    low, high = 1, shape.n_items
    if peak(high) <= budget:
        return high
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if peak(mid) <= budget else (low, mid)
    return low
