"""The shared trainer: early stopping with best-weight restore, cancellation, seeding, progress."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recsys_core.config import config_from_dict, config_to_dict
from recsys_core.errors import Cancelled, ConfigError
from recsys_core.models.bpr import BPR, BPRConfig
from recsys_core.models.popular import MostPopular
from recsys_core.training import trainer as trainer_mod
from recsys_core.training.foldin import least_squares_foldin
from recsys_core.training.losses import bce_loss, bpr_loss
from recsys_core.training.trainer import (
    TrainConfig,
    autocast_context,
    local_validation_ndcg,
    train_loop,
)


def _split(data, seed=0):
    r = np.random.default_rng(seed).random(data.nnz)
    return data.select(r < 0.8), data.select(r >= 0.8)


@dataclass
class _Toy:
    """Minimal stand-in for a Recommender: a device, a name and nothing else."""

    device: torch.device = torch.device("cpu")
    name: str = "toy"


def test_early_stopping_restores_best_weights(monkeypatch, small_synthetic):
    module = torch.nn.Linear(3, 1)
    scripted = iter([0.1, 0.5, 0.3, 0.2, 0.4, 0.9])  # best at epoch 2, then 3 worse evaluations
    snapshots: list[torch.Tensor] = []

    def fake_metric(model, train, valid):
        snapshots.append(module.weight.detach().clone())
        return next(scripted)

    monkeypatch.setattr(trainer_mod, "validation_metric", fake_metric)
    x = torch.randn(32, 3)

    def step(batch):
        return (module(x) - 1.0).pow(2).mean()

    toy = _Toy()
    cfg = TrainConfig(epochs=6, patience=3, lr=0.1)
    result = train_loop(
        toy,
        module,
        cfg,
        epoch_batches=lambda e: range(2),
        step_loss=step,
        train=small_synthetic,
        valid=small_synthetic,
        progress=lambda s, m: None,
    )
    assert result.epochs_run == 5  # epochs 3, 4, 5 did not improve: stop after patience 3
    assert result.best_epoch == 2 and toy.best_epoch_ == 2
    assert result.best_valid == pytest.approx(0.5)
    assert torch.equal(module.weight.detach(), snapshots[1])
    assert not torch.equal(snapshots[1], snapshots[-1])  # weights did move after the best
    assert len(toy.epoch_seconds_) == 5 and all(s >= 0 for s in toy.epoch_seconds_)


def test_cancelled_propagates_out_of_fit(small_synthetic):
    calls = []

    def progress(step, metrics):
        calls.append(metrics)
        raise Cancelled("stop")

    model = BPR(BPRConfig(epochs=5, batch_size=64), device="cpu")
    with pytest.raises(Cancelled):
        model.fit(small_synthetic, progress=progress)
    assert len(calls) == 1


def test_progress_reports_epochs_loss_and_validation(synthetic):
    train, valid = _split(synthetic)
    seen = []
    cfg = BPRConfig(epochs=3, batch_size=512, patience=10)
    model = BPR(cfg, device="cpu").fit(train, valid=valid, progress=lambda s, m: seen.append(m))
    ends = [m for m in seen if "valid_ndcg@10" in m]
    assert [m["epoch"] for m in ends] == [1.0, 2.0, 3.0]
    assert all(m["epochs_total"] == 3 and np.isfinite(m["loss"]) for m in ends)
    assert all(0.0 <= m["valid_ndcg@10"] <= 1.0 for m in ends)
    assert model.n_epochs_run_ == 3 and len(model.epoch_seconds_) == 3
    assert model.curves_["loss"][-1] < model.curves_["loss"][0]


def test_cpu_seeding_is_reproducible(small_synthetic):
    cfg = BPRConfig(epochs=3, batch_size=64)
    a = BPR(cfg, device="cpu", seed=7).fit(small_synthetic).item_embeddings()
    b = BPR(cfg, device="cpu", seed=7).fit(small_synthetic).item_embeddings()
    c = BPR(cfg, device="cpu", seed=8).fit(small_synthetic).item_embeddings()
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_local_validation_ndcg_hand_computed(small_synthetic):
    # one user; train = item 0; valid = items 1 and 3; the model ranks 1, 2, 3, ... (by -index)
    class Fixed:
        def score_users(self, users):
            return -torch.arange(5, dtype=torch.float32).expand(len(users), -1).clone()

    def inter(items):
        from recsys_core.data.interactions import Interactions

        n = len(items)
        return Interactions(
            user_ids=np.array(["u"]),
            item_ids=np.array(list("abcde")),
            users=np.zeros(n, np.int32),
            items=np.array(items, np.int32),
            values=np.ones(n, np.float32),
        )

    got = local_validation_ndcg(Fixed(), inter([0]), inter([1, 3]), k=3)
    # ranking after excluding item 0: 1, 2, 3 -> hits at ranks 1 and 3
    dcg = 1 / np.log2(2) + 1 / np.log2(4)
    idcg = 1 / np.log2(2) + 1 / np.log2(3)
    assert got == pytest.approx(dcg / idcg)


def test_trainer_validation_agrees_with_evaluation_module(synthetic):
    evaluate = pytest.importorskip("recsys_core.evaluate")
    train, valid = _split(synthetic)
    model = MostPopular().fit(train)
    ours = local_validation_ndcg(model, train, valid)
    theirs = evaluate.validation_ndcg(model, train, valid, k=10)
    assert ours == pytest.approx(theirs, rel=1e-5)


def test_autocast_is_a_noop_on_cpu():
    with autocast_context(torch.device("cpu"), True):
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.float32


def test_train_config_round_trips_and_validates():
    cfg = BPRConfig(lr=0.01, optimizer="adamw")
    assert config_from_dict(BPRConfig, config_to_dict(cfg)) == cfg
    with pytest.raises(ConfigError, match="optimizer"):
        BPRConfig(optimizer="lbfgs")
    with pytest.raises(ConfigError, match="lr"):
        BPRConfig(lr=0.0)


def test_least_squares_foldin_matches_normal_equations():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(12, 4)).astype(np.float32)
    hist = sp.csr_matrix(
        np.array([[1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0], [0] * 11 + [1]], np.float32)
    )
    got = least_squares_foldin(torch.as_tensor(v), hist, reg=0.5, unobserved_weight=0.1).numpy()
    for r in range(2):
        h = hist[r].indices
        a = 0.1 * v.T @ v + 0.9 * v[h].T @ v[h] + 0.5 * np.eye(4)
        want = np.linalg.solve(a, v[h].sum(0))
        assert np.allclose(got[r], want, atol=1e-4)


def test_losses_reduce_to_their_plain_forms():
    pos = torch.tensor([2.0, -1.0])
    neg = torch.tensor([[0.0], [1.0]])
    plain = -torch.nn.functional.logsigmoid(pos[:, None] - neg).mean()
    assert bpr_loss(pos, neg) == pytest.approx(float(plain))
    # focal modulation only shrinks the loss, most for well-ordered pairs
    assert float(bpr_loss(pos, neg, gamma=2.0)) < float(plain)
    logits, labels = torch.tensor([1.0, -2.0]), torch.tensor([1.0, 0.0])
    base = float(bce_loss(logits, labels))
    assert float(bce_loss(logits, labels, pos_weight=3.0)) > base
    ref = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
    assert base == pytest.approx(float(ref))


def test_taste_loss_full_softmax_equals_one_cross_entropy_per_target():
    """The shared-softmax form of the all-action loss is the per-target cross-entropy."""
    from recsys_core.training.sequences import next_item_loss, taste_loss

    gen = torch.Generator().manual_seed(0)
    last, items = torch.randn(4, 8, generator=gen), torch.randn(30, 8, generator=gen)
    taste = torch.randint(0, 30, (4, 5), generator=gen)
    weights = torch.rand(30, generator=gen) + 0.5
    naive = next_item_loss(
        last[:, None, :].expand(-1, 5, -1), taste, items, pad=-1, target_weights=weights
    )
    assert torch.allclose(taste_loss(last, taste, items, target_weights=weights), naive, atol=1e-6)


@pytest.mark.parametrize("chunk_floats", [2**22, 7], ids=["one-chunk", "row-per-chunk"])
def test_linear_cross_entropy_matches_cross_entropy(monkeypatch, chunk_floats):
    """The chunked fused loss has the value and gradients of cross_entropy(h @ W.T)."""
    from recsys_core.training import losses

    monkeypatch.setattr(losses, "CE_CHUNK_FLOATS", chunk_floats)
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(13, 5, dtype=torch.float64, generator=gen, requires_grad=True)
    items = torch.randn(6, 5, dtype=torch.float64, generator=gen, requires_grad=True)
    targets = torch.randint(0, 6, (13,), generator=gen)
    weights = torch.rand(13, dtype=torch.float64, generator=gen)

    def fused(h, w):
        return losses.linear_cross_entropy(h, w, targets, row_weights=weights)

    def plain(h, w):
        ce = torch.nn.functional.cross_entropy(h @ w.T, targets, reduction="none")
        return (ce * weights).mean()

    assert torch.autograd.gradcheck(fused, (hidden, items))
    got, want = fused(hidden, items), plain(hidden, items)
    assert torch.allclose(got, want)
    for a, b in zip(
        torch.autograd.grad(got, (hidden, items)),
        torch.autograd.grad(want, (hidden, items)),
        strict=True,
    ):
        assert torch.allclose(a, b)
    # float32 inputs give float32 gradients; only the hidden side may need them
    h32 = hidden.detach().float().requires_grad_()
    loss = losses.linear_cross_entropy(h32, items.detach().float(), targets)
    loss.backward()
    assert h32.grad.dtype == torch.float32 and loss.dtype == torch.float32
    # no rows to predict (every position padding): zero loss, zero gradients, no NaN
    empty = torch.zeros(0, 5, requires_grad=True)
    zero = losses.linear_cross_entropy(empty, items.detach().float(), targets[:0])
    zero.backward()
    assert zero.item() == 0.0 and empty.grad.shape == (0, 5)
