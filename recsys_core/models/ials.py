"""iALS: implicit-feedback alternating least squares (Hu, Koren & Volinsky, ICDM 2008).

Every user-item pair is a regression target: preference p_ui = 1 for observed pairs, 0 for the
rest, with a weight (confidence). The loss (Hu et al. 2008, eq. 3, generalised to per-item
weights of the unobserved entries as in eALS, He et al. 2016) is

    L = sum_{(u,i) observed} c_ui (1 - x_u.y_i)^2 + sum_{(u,i) unobserved} w_i (x_u.y_i)^2
        + sum_u lambda_u |x_u|^2 + sum_i lambda_i |y_i|^2

with confidence c_ui = (1 + alpha) s_i (s_i = 1 unless inverse-propensity scaling is on) and
w_i = 1 (uniform) or popularity^neg_alpha normalised to mean 1. Regularisation is either plain
(lambda_u = lambda) or frequency-scaled as in Rendle et al. 2022 ("Revisiting the performance
of iALS on item recommendation benchmarks", eq. 6): lambda_u = lambda (total weight of row u)^nu.

Each half step minimises over one side: with the other side fixed, every row's factor solves

    (F^T W F + sum_{obs} (c - w) f f^T + lambda_r I) x_r = sum_{obs} c f,

where the shared Gramian F^T W F is computed once per half step. Two batched solvers, both
over all rows at once on the device (no loop over users):

- ``cg`` (default): a few conjugate-gradient steps warm-started at the previous factors
  (Takacs et al. 2011, as in implicit's CPU default), applying A_r without forming it:
  O(nnz d) per step;
- ``cholesky``: the exact [batch, d, d] systems, built from gathered factors by batched
  matrix products and solved by a batched Cholesky factorisation.

The last half step of training solves the users exactly (whatever the solver), so
``score_history`` (the same exact solve for a given history, "fold-in") reproduces a training
user's factors.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from recsys_core.balance import BalanceConfig
from recsys_core.config import param, validate
from recsys_core.data.interactions import Interactions, Sequences
from recsys_core.errors import ConfigError
from recsys_core.models.base import ProgressFn, Recommender

#: Rows solved per exact batch, and the float budget of one batch's gathered factors.
ROW_BATCH = 8192
OUTER_FLOATS = 2**26
#: Longest / shortest history within one exact-solve group.
GROUP_SPREAD = 2.0


@dataclass(frozen=True)
class IALSConfig:
    """iALS hyperparameters.

    Defaults: 64 factors and 15 iterations (the comparison setting of the issue, also
    implicit's iteration default); alpha and lambda chosen on the validation part of the fixed
    MovieLens split from the ranges Rendle et al. 2022 recommend.
    """

    factors: int = param(64, "latent dimensions d", low=1, high=4096, log=True, search=(8, 256))
    iterations: int = param(15, "alternating sweeps (users + items)", low=1, high=1000)
    # alpha and lambda: on the validation part of the fixed ml-latest-small split, (alpha, l2)
    # = (1, 5) / (2, 15) / (2, 30) / (4, 30) / (2, 60) give NDCG@10
    # 0.2015 / 0.2080 / 0.2117 / 0.2106 / 0.1625 (Rendle et al. 2022: tune lambda first).
    alpha: float = param(
        2.0,
        "extra confidence of observed pairs: c = 1 + alpha",
        low=0.0,
        high=1e5,
        log=True,
        search=(0.1, 50.0),
    )
    l2: float = param(
        30.0, "L2 regularisation lambda", low=0.0, high=1e6, log=True, search=(0.1, 1000.0)
    )
    reg_exponent: float = param(
        0.0,
        "frequency scaling nu of lambda (Rendle et al. 2022; 0 = plain lambda)",
        low=0.0,
        high=2.0,
        search=(0.0, 1.0),
    )
    init_std: float = param(0.01, "std of the normal initial factors", low=1e-6, high=1.0, log=True)
    solver: str = param(
        "cg",
        "per-sweep solver: warm-started conjugate gradient or exact Cholesky",
        choices=("cg", "cholesky"),
    )
    cg_steps: int = param(
        3, "conjugate-gradient steps per half sweep (solver='cg')", low=1, high=256
    )
    eval_every: int = param(
        0,
        "sweeps between two validations for the progress curve (0 = after the last sweep "
        "only; a pruned study asks for 1); each costs about one ranking of the valid users",
        low=0,
        high=1000,
    )

    def __post_init__(self) -> None:
        validate(self)


class IALS(Recommender):
    """Weighted matrix factorisation for implicit feedback (see module docstring).

    Balance: ``ips_beta`` scales each positive's confidence by popularity^-ips_beta (normalised
    to mean 1 over the training positives); ``neg_sampler="popularity"`` with ``neg_alpha``
    weights unobserved entries by popularity^neg_alpha (eALS, He et al. 2016), normalised to
    mean 1 over items.
    """

    name = "ials"
    update_strategy = "partial_als"
    family = "cf"
    Config = IALSConfig
    honours_balance = frozenset({"ips_beta", "neg_sampler"})

    def __init__(
        self,
        config: IALSConfig | None = None,
        *,
        device: str | torch.device = "auto",
        seed: int = 0,
        balance: BalanceConfig | None = None,
    ) -> None:
        super().__init__(config, device=device, seed=seed, balance=balance)
        if self.balance.neg_sampler not in ("uniform", "popularity"):
            raise ConfigError(
                f"model 'ials' does not honour neg_sampler={self.balance.neg_sampler!r}: it "
                "weights every unobserved item instead of sampling; choose 'uniform' or "
                "'popularity'"
            )

    # ----- training ------------------------------------------------------------------------
    def _fit(self, train: Interactions, valid: Interactions | None, progress: ProgressFn) -> None:
        cfg = self.config
        dev = self.device
        x = self.history_  # binary CSR [U, I]
        self._set_weights(train)

        gen = torch.Generator().manual_seed(self.seed)
        d = cfg.factors
        users = torch.randn(train.n_users, d, generator=gen) * cfg.init_std
        self.item_factors_ = (torch.randn(train.n_items, d, generator=gen) * cfg.init_std).to(dev)
        self.user_factors_ = users.to(dev)

        ui = _SideData(x, self.pos_scale_, self.unobserved_w_, cfg.alpha, dev, by_item=False)
        iu = _SideData(
            x.T.tocsr(), self.pos_scale_, self.unobserved_w_, cfg.alpha, dev, by_item=True
        )
        exact = cfg.solver == "cholesky"
        user_work = None if exact else _Workspace(ui, d, dev)
        item_work = None if exact else _Workspace(iu, d, dev)
        self.n_epochs_run_ = 0
        self.epoch_seconds_: list[float] = []
        for it in range(1, cfg.iterations + 1):
            start = time.perf_counter()
            # items first, users last; the very last user step is exact whatever the solver,
            # so score_history (the same exact solve) reproduces a training user's factors
            last = it == cfg.iterations
            self.item_factors_ = self._solve(iu, self.user_factors_, self.item_factors_, item_work)
            self.user_factors_ = self._solve(
                ui, self.item_factors_, self.user_factors_, None if last else user_work
            )
            self.epoch_seconds_.append(time.perf_counter() - start)
            self.n_epochs_run_ = it
            metrics = {"epoch": float(it), "epochs_total": float(cfg.iterations)}
            due = last or (cfg.eval_every > 0 and it % cfg.eval_every == 0)
            if due and valid is not None and valid.nnz:
                from recsys_core.evaluate import validation_ndcg

                metrics["valid_ndcg@10"] = validation_ndcg(self, train, valid, k=10)
            progress(it, metrics)

    def _set_weights(self, train: Interactions) -> None:
        """Unobserved-entry weights w_i and positive scales s_i from ``train``'s popularity."""
        dev = self.device
        pop = np.maximum(train.item_popularity.astype(np.float64), 1.0)
        if self.balance.neg_sampler == "popularity":
            weights = _unit_mean(pop**self.balance.neg_alpha)
            self.unobserved_w_ = torch.as_tensor(weights, device=dev)
        else:
            self.unobserved_w_ = torch.ones(train.n_items, device=dev)
        scale = pop ** (-self.balance.ips_beta)
        # mean 1 over the training positives keeps alpha's meaning when IPS is switched on
        pos_mean = (scale * train.item_popularity).sum() / max(train.item_popularity.sum(), 1)
        self.pos_scale_ = torch.as_tensor(scale / pos_mean, dtype=torch.float32, device=dev)

    def partial_update(
        self, train: Interactions, *, sweeps: int = 2, progress: ProgressFn | None = None
    ) -> IALS:
        """Fold the new interactions of ``train`` in without a full refit; returns ``self``.

        As implicit's ``partial_fit_users`` / ``partial_fit_items``: rows are added for new
        users and items (initialised as in ``fit``), then ``sweeps`` alternating exact solves
        restricted to the *touched* users (whose rows changed) and touched items, ending with
        the users. Every other factor stays as it was, so the cost grows with the size of the
        batch, not of the dataset. ``train`` must extend the fitted data's vocabularies (a
        later version of its dataset: :mod:`recsys_core.data.versions`).
        """
        self._check_fitted()
        if train.n_users < self.n_users_ or train.n_items < self.n_items_:
            raise ConfigError(
                f"ials update: the new data has {train.n_users} users / {train.n_items} items, "
                f"fewer than the fitted {self.n_users_} / {self.n_items_}; update with a later "
                "version of the same dataset"
            )
        cfg, dev = self.config, self.device
        new = train.binary.tocsr()
        old = sp.csr_matrix(self.history_, dtype=np.float32, copy=True)
        old.resize(new.shape)  # new users and items are empty rows / columns of the old data
        changed = (new != old).tocoo()
        users = np.union1d(changed.row, np.arange(self.n_users_, train.n_users))
        items = np.union1d(changed.col, np.arange(self.n_items_, train.n_items))
        gen = torch.Generator().manual_seed(self.seed + 1)
        grow_u = torch.randn(train.n_users - self.n_users_, cfg.factors, generator=gen)
        grow_i = torch.randn(train.n_items - self.n_items_, cfg.factors, generator=gen)
        self.user_factors_ = torch.cat([self.user_factors_, (grow_u * cfg.init_std).to(dev)])
        self.item_factors_ = torch.cat([self.item_factors_, (grow_i * cfg.init_std).to(dev)])
        self.n_users_, self.n_items_, self.history_ = train.n_users, train.n_items, new
        self._set_weights(train)
        w, s = self.unobserved_w_, self.pos_scale_
        u_idx = torch.as_tensor(users, device=dev)
        i_idx = torch.as_tensor(items, device=dev)
        ui = _SideData(new[users], s, w, cfg.alpha, dev, by_item=False)
        iu = _SideData(new.T.tocsr()[items], s[i_idx], w[i_idx], cfg.alpha, dev, by_item=True)
        for sweep in range(1, sweeps + 1):
            self.user_factors_[u_idx] = self._solve(ui, self.item_factors_, None, None)
            self.item_factors_[i_idx] = self._solve(
                iu, self.user_factors_, None, None, w=w[i_idx]
            )
            if progress is not None:
                progress(sweep, {"epoch": float(sweep), "epochs_total": float(sweeps)})
        self.user_factors_[u_idx] = self._solve(ui, self.item_factors_, None, None)
        self.touched_ = {"users": int(len(users)), "items": int(len(items))}
        return self

    def _solve(
        self,
        side: _SideData,
        fixed: torch.Tensor,
        current: torch.Tensor | None,
        work: _Workspace | None,
        w: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Least-squares factors of every row of ``side`` given the ``fixed`` factors.

        With a workspace: ``cg_steps`` CG steps warm-started at ``current``, which is updated in
        place; without (``current`` may then be None): the exact batched solve. ``w``: the
        unobserved weights of ``side``'s rows when it holds a subset of the items (partial
        updates); default: every item's.
        """
        cfg = self.config
        w = self.unobserved_w_ if w is None else w
        uniform = self.balance.neg_sampler == "uniform"  # every w_i = 1
        if side.by_item:
            # item i: w_i X^T X (its unobserved weight is the same for every user)
            gram = fixed.T @ fixed
            base_mult = None if uniform else w
            total_w = w * fixed.shape[0] + side.corr_rowsum
        else:
            gram = fixed.T @ (fixed if uniform else fixed * w[:, None])
            base_mult = None
            total_w = w.sum() + side.corr_rowsum
        reg = cfg.l2 * total_w.clamp_min(1e-12) ** cfg.reg_exponent
        if work is None or current is None:
            return _exact_solve(side, fixed, gram, base_mult, reg)
        return _cg_solve(side, fixed, gram, base_mult, reg, current, cfg.cg_steps, work)

    # ----- scoring -------------------------------------------------------------------------
    def score_users(self, users: np.ndarray) -> torch.Tensor:
        """Scores [len(users), n_items] = X_u Y^T from the learned user factors."""
        self._check_fitted()
        idx = torch.as_tensor(np.asarray(users, dtype=np.int64), device=self.device)
        return self.user_factors_[idx] @ self.item_factors_.T

    def score_history(
        self, history: sp.csr_matrix, sequences: Sequences | None = None
    ) -> torch.Tensor:
        """Fold-in: solve each history's user factor exactly, then score every item."""
        return self.fold_in(history) @ self.item_factors_.T

    def fold_in(self, history: sp.csr_matrix) -> torch.Tensor:
        """float32 [batch, d] user factors solving the iALS user step for ``history`` rows."""
        self._check_fitted()
        h = sp.csr_matrix(history, dtype=np.float32)
        h.data[:] = 1.0
        side = _SideData(
            h, self.pos_scale_, self.unobserved_w_, self.config.alpha, self.device, by_item=False
        )
        return self._solve(side, self.item_factors_, None, work=None)

    # ----- embeddings and persistence -------------------------------------------------------
    def item_embeddings(self) -> np.ndarray:
        self._check_fitted()
        return self.item_factors_.cpu().numpy()

    def user_embeddings(self) -> np.ndarray:
        self._check_fitted()
        return self.user_factors_.cpu().numpy()

    def _state(self) -> dict[str, torch.Tensor]:
        return {
            "user_factors": self.user_factors_,
            "item_factors": self.item_factors_,
            "pos_scale": self.pos_scale_,
            "unobserved_w": self.unobserved_w_,
        }

    def _load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.user_factors_ = state["user_factors"].to(self.device)
        self.item_factors_ = state["item_factors"].to(self.device)
        self.pos_scale_ = state["pos_scale"].to(self.device)
        self.unobserved_w_ = state["unobserved_w"].to(self.device)


class _SideData:
    """One side's sparse data on the device: rows to solve, columns = the fixed factors.

    Per observed pair k (CSR order): ``rows[k]``, ``cols[k]``, ``conf[k]`` = c (the target
    weight) and ``corr[k]`` = c - w (the Gramian correction); ``corr_rowsum`` [n_rows]. The
    CSR indices are int32 (int64 only past 2^31): with int64 ones torch's CPU product converts
    them on every call.
    """

    def __init__(
        self,
        matrix: sp.csr_matrix,
        pos_scale: torch.Tensor,
        unobserved_w: torch.Tensor,
        alpha: float,
        device: torch.device,
        *,
        by_item: bool,
    ) -> None:
        m = sp.csr_matrix(matrix, dtype=np.float32)
        rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
        item_of_nnz = rows if by_item else m.indices
        s = pos_scale.cpu().numpy()[item_of_nnz]
        w = unobserved_w.cpu().numpy()[item_of_nnz]
        conf = ((1.0 + alpha) * s).astype(np.float32)
        corr = (conf - w).astype(np.float32)
        self.by_item = by_item
        self.shape = m.shape
        self.nnz = m.nnz
        self.indptr = m.indptr.astype(np.int64)
        index_dtype = np.int32 if max(m.shape + (m.nnz,)) < 2**31 else np.int64
        self.crow = torch.as_tensor(m.indptr.astype(index_dtype), device=device)
        self.cols = torch.as_tensor(m.indices.astype(index_dtype), device=device)
        self.rows = torch.as_tensor(rows, device=device)
        self.conf = torch.as_tensor(conf, device=device)
        self.corr = torch.as_tensor(corr, device=device)
        self.corr_rowsum = torch.zeros(m.shape[0], device=device).index_add_(
            0, self.rows, self.corr
        )
        # MPS has no sparse CSR kernels: spmm and sddmm scatter and gather there instead
        self.sparse_kernels = torch.device(device).type != "mps"
        self.pattern = self.csr(torch.ones_like(self.conf)) if self.sparse_kernels else None

    def csr(self, values: torch.Tensor) -> torch.Tensor:
        """The sparse matrix with this pattern and per-pair ``values`` (shares their memory)."""
        return torch.sparse_csr_tensor(
            self.crow, self.cols, values, size=self.shape, check_invariants=False
        )

    def spmm(
        self, values: torch.Tensor, dense: torch.Tensor, out: torch.Tensor, beta: float = 1.0
    ) -> torch.Tensor:
        """``out <- beta * out + S @ dense`` in place, S this pattern with ``values``."""
        if not self.sparse_kernels:
            return out.mul_(beta).index_add_(0, self.rows, dense[self.cols] * values[:, None])
        return torch.addmm(out, self.csr(values), dense, beta=beta, out=out)

    def sddmm(self, left: torch.Tensor, right: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``out[k] <- left[rows[k]] . right[cols[k]]`` for every observed pair k; returns out.

        A sampled dense-dense product (torch.sparse.sampled_addmm) reads each factor row in
        place; gathering both sides into [nnz, d] copies first was 19x slower on the CPU and was
        80% of an iALS sweep.
        """
        if not self.sparse_kernels:
            return out.copy_((left[self.rows] * right[self.cols]).sum(1))
        torch.sparse.sampled_addmm(self.pattern, left, right.T, beta=0.0, out=self.csr(out))
        return out


class _Workspace:
    """The [n_rows, d] vectors and per-pair values one side's CG reuses in every sweep.

    A fresh [n_rows, d] tensor per operation costs more than the arithmetic on it on the CPU:
    each is new memory that must be faulted in (70,000 page faults in one fit on
    ml-latest-small with a tensor per operation, 5,000 this way, most of them in the final
    exact step).
    """

    def __init__(self, side: _SideData, d: int, device: torch.device) -> None:
        n = side.shape[0]
        self.r, self.p, self.ap, self.scratch = (torch.empty(n, d, device=device) for _ in range(4))
        self.rs, self.rs_new, self.denom = (torch.empty(n, device=device) for _ in range(3))
        self.pairs = torch.empty(side.nnz, device=device)


def _rowdot(a: torch.Tensor, b: torch.Tensor, work: _Workspace, out: torch.Tensor) -> torch.Tensor:
    """``out[r] = a[r] . b[r]`` through the workspace's [n, d] scratch (no fresh temporary)."""
    return torch.sum(torch.mul(a, b, out=work.scratch), dim=1, out=out)


def _cg_solve(
    side: _SideData,
    fixed: torch.Tensor,
    gram: torch.Tensor,
    base_mult: torch.Tensor | None,
    reg: torch.Tensor,
    x: torch.Tensor,
    steps: int,
    work: _Workspace,
) -> torch.Tensor:
    """A few conjugate-gradient steps for every row's system, warm-started at ``x`` (in place).

    Takacs, Pilaszy & Tikk (2011), "Applications of the conjugate gradient method for implicit
    feedback collaborative filtering": 2-3 warm-started steps per sweep match exact ALS quality
    at O(nnz d + n d^2) instead of O(nnz d^2 + n d^3). All rows advance together (batched).

    ``A v`` is never formed as [n_rows, d, d] matrices: its observed-pair part
    sum_k corr_k (f_k . v) f_k is a sampled product followed by one sparse product whose
    accumulator already holds the Gramian and ridge part. b = sum_k conf_k f_k has the same
    pattern, so the residual b - A x is one sparse product too, with values conf - corr (f . x).
    """

    def dense_part(v: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        torch.mm(v, gram, out=out)
        if base_mult is not None:
            out.mul_(base_mult[:, None])
        return out.addcmul_(v, reg[:, None])

    def pair_part(v: torch.Tensor) -> torch.Tensor:
        return side.sddmm(v, fixed, work.pairs).mul_(side.corr)

    r, p, ap, rs = work.r, work.p, work.ap, work.rs
    values = pair_part(x).neg_().add_(side.conf)  # conf - corr (f . x)
    side.spmm(values, fixed, dense_part(x, r), beta=-1.0)  # r = b - A x
    p.copy_(r)
    _rowdot(r, r, work, rs)
    for step_no in range(steps):
        side.spmm(pair_part(p), fixed, dense_part(p, ap))  # ap = A p
        step = rs / _rowdot(p, ap, work, work.denom).clamp_min_(1e-30)
        step.masked_fill_(work.denom <= 1e-30, 0.0)  # p = 0, or A only semidefinite
        x.addcmul_(p, step[:, None])
        if step_no == steps - 1:
            break
        r.addcmul_(ap, step[:, None], value=-1.0)
        rs_new = _rowdot(r, r, work, work.rs_new)
        beta = rs_new / rs.clamp_min(1e-30)
        p.mul_(beta[:, None]).add_(r)
        rs.copy_(rs_new)
    return x


def _exact_solve(
    side: _SideData,
    fixed: torch.Tensor,
    gram: torch.Tensor,
    base_mult: torch.Tensor | None,
    reg: torch.Tensor,
) -> torch.Tensor:
    """Solve A_r x_r = b_r exactly for every row r (see module docstring), batched on the device.

    Rows are sorted by their number of observed pairs and cut into groups whose padded size
    stays under ``OUTER_FLOATS / d``; each group's corrections sum_k corr_k f_k f_k^T come from
    one batched matrix product of its padded gathered factors, and its [group, d, d] systems
    are solved by a batched Cholesky factorisation.

    Returns
    -------
    float32 [n_rows, d].
    """
    n_rows, d = side.shape[0], fixed.shape[1]
    dev = fixed.device
    b = side.spmm(side.conf, fixed, torch.zeros(n_rows, d, device=dev))  # [n_rows, d]
    out = torch.empty(n_rows, d, dtype=torch.float32, device=dev)
    lengths = np.diff(side.indptr)
    order = np.argsort(lengths, kind="stable")
    sorted_len = lengths[order]
    budget = max(1, OUTER_FLOATS // d)
    g = 0
    while g < n_rows:  # a loop over groups of rows (few), never over single users
        span = (np.arange(1, n_rows - g + 1) * np.maximum(sorted_len[g:], 1)) <= budget
        # rows are padded to the group's longest: a group spans lengths within a factor of
        # GROUP_SPREAD, so padding at most doubles the work (one group of 10- to 2,700-item
        # users gathered 400 MB and was 90% of an iALS fit on ml-latest-small)
        span &= sorted_len[g:] <= GROUP_SPREAD * max(int(sorted_len[g]), 16)
        span[:1] = True  # a group holds at least one row, however long
        size = min(int(np.argmin(span)) if not span.all() else len(span), ROW_BATCH)
        rows_np = order[g : g + size]
        g += size
        width = int(sorted_len[g - 1])
        rows = torch.as_tensor(rows_np, device=dev)
        mult = 1.0 if base_mult is None else base_mult[rows, None, None]
        a = gram.expand(len(rows_np), d, d) * mult
        a.diagonal(dim1=1, dim2=2).add_(reg[rows, None])
        if width > 0:
            starts = torch.as_tensor(side.indptr[rows_np], device=dev)
            lens = torch.as_tensor(lengths[rows_np], device=dev)
            pos = starts[:, None] + torch.arange(width, device=dev)[None, :]
            valid = torch.arange(width, device=dev)[None, :] < lens[:, None]
            pos = torch.where(valid, pos, torch.zeros_like(pos))
            weights = torch.where(valid, side.corr[pos], torch.zeros_like(side.corr[pos]))
            f = fixed.index_select(0, side.cols[pos].reshape(-1)).view(len(rows_np), width, d)
            a.baddbmm_(f.transpose(1, 2), f * weights[..., None])
        chol, info = torch.linalg.cholesky_ex(a)
        if bool((info > 0).any()):  # numerically indefinite (lambda ~ 0): general solver
            out[rows] = torch.linalg.solve(a, b[rows])
        else:
            out[rows] = torch.cholesky_solve(b[rows, :, None], chol)[..., 0]
    return out


def _unit_mean(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return (values / values.mean()).astype(np.float32)
