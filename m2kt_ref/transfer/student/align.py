"""Concept Alignment Layer (CAL): maps from teacher latent space (width ``d_T``) into student
latent space (width ``d_S``), fitted on paired anchors.

Primitives only: tensors in, tensors out. Choosing anchors from a packet, reading hidden states
and saving files belong to the ingestion layer. Every computation runs on the device and in the
dtype of the input tensors (float32 or float64); on CPU a fit is deterministic for a given seed
and thread count.

Three maps, all of the form ``y = f(x)`` with ``x`` a teacher state and ``y`` a student state:

``procrustes`` (:class:`ProcrustesMap`)
    ``f(x) = mean_y + s * (x - mean_x) @ W`` with ``W [d_T, d_S]`` semi-orthogonal. Both sides are
    centred; ``W = U V^T`` from the thin SVD ``Xc^T Yc = U diag(sigma) V^T`` (``U [d_T, r]``,
    ``V [d_S, r]``, ``r = min(d_T, d_S)``), which maximises ``tr(W^T Xc^T Yc)`` over all ``W``
    with orthonormal columns (``d_T >= d_S``, ``W^T W = I``: a rotation followed by dropping
    ``d_T - d_S`` directions) or orthonormal rows (``d_T < d_S``, ``W W^T = I``: an isometric
    embedding into a ``d_T``-dimensional subspace of student space). This equals zero-padding the
    narrower side to ``max(d_T, d_S)`` columns, solving the square orthogonal Procrustes problem
    (Schönemann 1966) and discarding the padded rows/columns. The scale is the least-squares
    optimum given ``W``: ``s = sum(sigma) / ||Xc W||_F^2``, which is Umeyama's (1991) scale when
    ``d_T = d_S``. Exact (up to rounding) on ``Y = s X Q + t`` whenever ``Q`` is orthogonal or has
    orthonormal rows; for ``d_T > d_S`` it is the best distance-preserving projection, not the
    best linear one.

``ridge`` (:class:`RidgeMap`)
    ``f(x) = mean_y + (x - mean_x) @ W``, ``W = argmin ||Xc W - Yc||_F^2 + lam_eff ||W||_F^2``
    (intercept unpenalised), solved on the smaller side: the primal
    ``(Xc^T Xc + lam I_{d_T}) W = Xc^T Yc`` when ``n >= d_T``, else the dual
    ``W = Xc^T (Xc Xc^T + lam I_n)^{-1} Yc``; both give the same ``W``. ``lam`` is relative by
    default: ``lam_eff = lam * ||Xc||_F^2 / d_T``, a fraction of the mean eigenvalue of the
    ``d_T x d_T`` Gram matrix, so it does not depend on the units of the teacher's states. The
    default ``lam="auto"`` picks it by generalised cross-validation from one eigendecomposition
    of the smaller Gram matrix; a number fixes it and the system is solved by Cholesky. With
    ``lam_eff = 0`` (or if Cholesky fails because ``lam_eff`` vanishes in rounding), the
    minimum-norm least-squares solution via the pseudo-inverse is used instead.

``mlp`` (:class:`MLPMap`)
    In standardised units ``u = (x - mean_x) / scale_x`` (``scale_x``: RMS of a centred teacher
    coordinate on the training split; likewise ``scale_y``),
    ``f(x) = mean_y + scale_y * (u @ W + b + gelu(u @ A + a) @ B)``: a residual linear part
    ``W, b`` initialised from the ridge solution on the training split, plus one hidden GELU layer
    ``A [d_T, h]``, ``B [h, d_S]`` with ``B = 0`` at the start (so training starts from ridge).
    Trained with AdamW on the mean squared error (standardised units) for a fixed number of
    steps (linear warm-up over the first 10 %, cosine decay to 0), seeded, with early stopping on
    a held-out split of the anchors: the best validation state is kept and the ridge
    initialisation counts as a candidate, so the map is never worse than ridge (fitted on the
    training split) on that split. Expect a gain only with many anchors per teacher dimension
    (docs/performance.md, ## Alignment); with few, it stops at the ridge solution.

Each map has ``fit(x, y) -> self``, ``__call__(x) -> y_hat`` (any leading shape ``[..., d_T]``),
``to_state() -> dict[str, Tensor]`` (safetensors-ready, contiguous) and ``from_state(state)``;
fit diagnostics (plain numbers) are in ``fit_info``. :data:`ALIGNERS` names them for
:func:`fit_alignment`; :func:`anchor_curve` measures quality against the number of anchors.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from m2kt_ref.errors import UsageError
from m2kt_ref.transfer.student.align_metrics import (
    csls_scores,
    evaluate_alignment,
    linear_cka,
    mean_cosine,
    relative_residual,
    retrieval_top1,
)

__all__ = [
    "ALIGNERS",
    "GCV_GRID",
    "AlignmentMap",
    "MLPMap",
    "ProcrustesMap",
    "RidgeMap",
    "anchor_curve",
    "csls_scores",
    "default_counts",
    "evaluate_alignment",
    "fit_alignment",
    "linear_cka",
    "map_from_state",
    "mean_cosine",
    "relative_residual",
    "retrieval_top1",
]

FLOAT_DTYPES = (torch.float32, torch.float64)


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    """Anchors must be paired float32/float64 matrices on one device, finite, n >= 2."""
    for name, t in (("teacher states", x), ("student states", y)):
        if not isinstance(t, torch.Tensor) or t.dim() != 2:
            raise UsageError(f"{name} must be a 2-D tensor [n, d]")
        if t.dtype not in FLOAT_DTYPES:
            raise UsageError(f"{name} must be float32 or float64 (got {t.dtype}); convert first")
    if x.shape[0] != y.shape[0]:
        raise UsageError(
            f"teacher and student anchors differ in count ({x.shape[0]} vs {y.shape[0]})"
        )
    if x.shape[0] < 2:
        raise UsageError(f"an alignment needs at least 2 anchors, got {x.shape[0]}")
    if x.shape[1] < 1 or y.shape[1] < 1:
        raise UsageError("anchor widths must be >= 1")
    if x.device != y.device or x.dtype != y.dtype:
        raise UsageError(
            f"teacher and student anchors must share device and dtype "
            f"({x.device}/{x.dtype} vs {y.device}/{y.dtype})",
        )
    # One pass at memory speed: a NaN or infinity in a column makes its sum non-finite
    # (elementwise isfinite costs several times more on 10^5 x 1024 anchors).
    if not bool(torch.isfinite(x.sum(dim=0)).all()) or not bool(torch.isfinite(y.sum(dim=0)).all()):
        raise UsageError(
            "anchor states contain NaN or infinite values (or values whose sum overflows)"
        )


def _centre(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = t.mean(dim=0)
    return t - mean, mean


def _standardise_(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Centre ``t`` in place and divide it by the RMS of its coordinates (0-d, >= tiny)."""
    mean = t.mean(dim=0)
    t.sub_(mean)
    scale = (torch.linalg.matrix_norm(t) / math.sqrt(t.numel())).clamp_min(
        torch.finfo(t.dtype).tiny
    )
    return t.div_(scale), mean, scale


class AlignmentMap:
    """Base of the fitted maps: state tensors, application, serialisation.

    Subclasses list their state tensor names in ``state_keys`` and implement ``_fit`` and
    ``_apply`` (on a 2-D batch). Get a fitted map from :func:`fit_alignment` (or
    ``ALIGNERS[method](**options).fit(x, y)``); rebuild a saved one with :meth:`from_state`.

    Example:
        >>> import torch
        >>> import m2kt_ref.transfer as mt
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(32, 6, generator=g, dtype=torch.float64)       # teacher states
        >>> q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=torch.float64))
        >>> y = 2.0 * x @ q + 1.0                # student states: scaled, rotated, shifted
        >>> cal = mt.fit_alignment("procrustes", x, y)
        >>> isinstance(cal, mt.AlignmentMap), cal
        (True, ProcrustesMap(6 -> 6, torch.float64))
        >>> torch.allclose(cal(x), y), round(cal.fit_info["scale"], 6)
        (True, 2.0)
        >>> again = type(cal).from_state(cal.to_state())    # e.g. after safetensors save/load
        >>> torch.equal(again(x), cal(x))
        True
    """

    method: ClassVar[str] = ""
    state_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        #: the keyword options the map was built with (empty after :meth:`from_state`).
        self.options: dict[str, Any] = {}
        #: the fitted tensors, named as in ``state_keys``; empty until fitted.
        self.state: dict[str, torch.Tensor] = {}
        #: plain-number diagnostics of the last fit (scale, solver, steps run...).
        self.fit_info: dict[str, Any] = {}

    # -- properties -------------------------------------------------------------------------
    @property
    def fitted(self) -> bool:
        """Whether the map holds fitted tensors."""
        return bool(self.state)

    @property
    def in_dim(self) -> int:
        """Teacher width ``d_T``."""
        self._require_fitted()
        return int(self.state["mean_x"].shape[0])

    @property
    def out_dim(self) -> int:
        """Student width ``d_S``."""
        self._require_fitted()
        return int(self.state["mean_y"].shape[0])

    @property
    def device(self) -> torch.device:
        """Device of the fitted tensors."""
        self._require_fitted()
        return self.state["mean_x"].device

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the fitted tensors (float32 or float64)."""
        self._require_fitted()
        return self.state["mean_x"].dtype

    def _require_fitted(self) -> None:
        if not self.state:
            raise UsageError(f"the {self.method} map is not fitted; call fit() first")

    # -- fitting and applying -----------------------------------------------------------------
    def fit(self, x: torch.Tensor, y: torch.Tensor) -> AlignmentMap:
        """Fit on paired anchors and return ``self``.

        Args:
            x: teacher states ``[n, d_T]`` (float32 or float64).
            y: student states ``[n, d_S]``, same device and dtype; row ``i`` pairs with ``x[i]``.

        Raises:
            UsageError: ``USAGE`` on unpaired, non-float, non-finite inputs or ``n < 2``.
        """
        _check_pair(x, y)
        with torch.no_grad():
            state = self._fit(x.detach(), y.detach())
        self.state = {key: state[key].detach().contiguous() for key in self.state_keys}
        return self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Map teacher states ``[..., d_T]`` to student space ``[..., d_S]``.

        Gradients flow to ``x`` if it requires them (the map's own tensors are constants).

        Raises:
            UsageError: ``USAGE`` if not fitted, or on a width, device or dtype other than the
                map's (use :meth:`to` to move the map).
        """
        self._require_fitted()
        if not isinstance(x, torch.Tensor) or x.dim() < 1 or x.shape[-1] != self.in_dim:
            raise UsageError(f"the {self.method} map expects [..., {self.in_dim}] input")
        if x.device != self.device or x.dtype != self.dtype:
            raise UsageError(
                f"input on {x.device}/{x.dtype} but the map is on {self.device}/{self.dtype}; "
                "use map.to(...)",
            )
        lead = x.shape[:-1]
        return self._apply(x.reshape(-1, self.in_dim)).reshape(*lead, self.out_dim)

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> AlignmentMap:
        """A copy of this fitted map on ``device`` and/or in ``dtype`` (float32/float64)."""
        self._require_fitted()
        if dtype is not None and dtype not in FLOAT_DTYPES:
            raise UsageError(f"a map's dtype must be float32 or float64, not {dtype}")
        out = type(self).from_state(
            {k: v.to(device=device, dtype=dtype) for k, v in self.state.items()}
        )
        out.options, out.fit_info = dict(self.options), dict(self.fit_info)
        return out

    # -- serialisation ------------------------------------------------------------------------
    def to_state(self) -> dict[str, torch.Tensor]:
        """The fitted map as named contiguous tensors (safetensors-ready; the method is not
        included: store it beside the tensors, e.g. in the safetensors metadata)."""
        self._require_fitted()
        return dict(self.state)

    @classmethod
    def from_state(cls, state: Mapping[str, torch.Tensor]) -> AlignmentMap:
        """Rebuild a fitted map from :meth:`to_state`'s output.

        Raises:
            UsageError: ``USAGE`` on missing or unknown keys, or inconsistent shapes or dtypes.
        """
        keys = set(state)
        expected = set(cls.state_keys)
        if keys != expected:
            missing, extra = sorted(expected - keys), sorted(keys - expected)
            raise UsageError(
                f"not a {cls.method} map state "
                f"(missing: {missing or '-'}, unknown: {extra or '-'})",
            )
        tensors = [state[k] for k in cls.state_keys]
        if any(not isinstance(t, torch.Tensor) for t in tensors):
            raise UsageError(f"a {cls.method} map state holds tensors only")
        first = tensors[0]
        if any(t.dtype != first.dtype or t.device != first.device for t in tensors):
            raise UsageError(f"a {cls.method} map state must share one dtype and device")
        if first.dtype not in FLOAT_DTYPES:
            raise UsageError(f"a {cls.method} map state must be float32 or float64")
        out = cls.__new__(cls)
        AlignmentMap.__init__(out)
        out.state = {k: state[k].contiguous() for k in cls.state_keys}
        out._check_state_shapes()
        return out

    def _check_state_shapes(self) -> None:
        d_t, d_s = self.state["mean_x"].shape, self.state["mean_y"].shape
        if len(d_t) != 1 or len(d_s) != 1:
            raise UsageError(f"a {self.method} map state has non-vector means")
        for key, shape in self._expected_shapes(d_t[0], d_s[0]).items():
            got = tuple(self.state[key].shape)
            if shape is not None and got != shape:
                raise UsageError(
                    f"{self.method} map state {key!r} has shape {got}, expected {shape}"
                )

    def _expected_shapes(self, d_t: int, d_s: int) -> dict[str, tuple[int, ...] | None]:
        raise NotImplementedError

    def _fit(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _apply(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        if not self.fitted:
            return f"{type(self).__name__}(unfitted)"
        return f"{type(self).__name__}({self.in_dim} -> {self.out_dim}, {self.dtype})"


class ProcrustesMap(AlignmentMap):
    """Orthogonal (semi-orthogonal when ``d_T != d_S``) Procrustes with scale; see module doc.

    Args:
        scale: fit the isotropic scale ``s`` (else ``s = 1``).
        center: centre both sides (else the means are zero and the map is linear).
    """

    method = "procrustes"
    state_keys = ("mean_x", "mean_y", "weight", "scale")

    def __init__(self, *, scale: bool = True, center: bool = True) -> None:
        super().__init__()
        self.options = {"scale": bool(scale), "center": bool(center)}

    def _fit(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.options["center"]:
            xc, mean_x = _centre(x)
            yc, mean_y = _centre(y)
        else:
            xc, yc = x, y
            mean_x = x.new_zeros(x.shape[1])
            mean_y = y.new_zeros(y.shape[1])
        u, sigma, vh = torch.linalg.svd(xc.T @ yc, full_matrices=False)
        weight = u @ vh
        if self.options["scale"]:
            # With orthonormal rows (d_T <= d_S), W is an isometry: ||Xc W|| = ||Xc||, no matmul.
            proj = xc if x.shape[1] <= y.shape[1] else xc @ weight
            denom = torch.linalg.matrix_norm(proj) ** 2
            scale = sigma.sum() / denom.clamp_min(torch.finfo(x.dtype).tiny)
        else:
            scale = x.new_ones(())
        self.fit_info = {"scale": float(scale), "rank": min(x.shape[1], y.shape[1])}
        return {"mean_x": mean_x, "mean_y": mean_y, "weight": weight, "scale": scale}

    def _apply(self, x: torch.Tensor) -> torch.Tensor:
        s = self.state
        return torch.addmm(s["mean_y"], x - s["mean_x"], s["weight"], alpha=s["scale"])

    def _expected_shapes(self, d_t: int, d_s: int) -> dict[str, tuple[int, ...] | None]:
        return {"weight": (d_t, d_s), "scale": ()}


def _check_lam(lam: float | str) -> float | str:
    if lam == "auto":
        return "auto"
    if isinstance(lam, bool) or not isinstance(lam, (int, float)):
        raise UsageError(f"ridge lam must be a number >= 0 or 'auto', got {lam!r}")
    if not (lam >= 0 and math.isfinite(lam)):
        raise UsageError(f"ridge lam must be a finite number >= 0, got {lam}")
    return float(lam)


#: Relative ridge strengths tried by ``lam="auto"`` (times the mean Gram eigenvalue).
GCV_GRID = tuple(10.0 ** (k / 4) for k in range(-24, 9))  # 1e-6 ... 1e2, 4 per decade


def _ridge_solve(
    xc: torch.Tensor, yc: torch.Tensor, lam: float | str, relative: bool
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Ridge weight ``[d_T, d_S]`` for centred anchors, solved on the smaller side."""
    n, d_t = xc.shape
    mean_eig = float(torch.linalg.matrix_norm(xc)) ** 2 / d_t
    primal = n >= d_t
    side = "primal" if primal else "dual"
    if lam == "auto":
        return _ridge_gcv(xc, yc, mean_eig, primal)
    lam_eff = float(lam) * mean_eig if relative else float(lam)
    info: dict[str, Any] = {"lam_eff": lam_eff, "side": side, "solver": "cholesky"}
    if lam_eff == 0:
        # Plain least squares: the minimum-norm solution, via the pseudo-inverse of the anchors
        # themselves (a Gram matrix would square their condition number).
        info["solver"] = "pinv"
        return torch.linalg.pinv(xc) @ yc, info
    gram = xc.T @ xc if primal else xc @ xc.T
    gram.diagonal().add_(lam_eff)
    rhs = xc.T @ yc if primal else yc
    chol, status = torch.linalg.cholesky_ex(gram)
    if int(status) == 0:
        sol = torch.cholesky_solve(rhs, chol)
    else:
        # lam_eff is lost in rounding against the Gram's scale: fall back to the pseudo-inverse.
        sol = torch.linalg.pinv(gram, hermitian=True) @ rhs
        info["solver"] = "pinv"
    weight = sol if primal else xc.T @ sol
    return weight, info


def _ridge_gcv(
    xc: torch.Tensor, yc: torch.Tensor, mean_eig: float, primal: bool
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Ridge with the strength chosen by generalised cross-validation (Golub, Heath and Wahba
    1979) over :data:`GCV_GRID`, from one eigendecomposition of the smaller Gram matrix.

    With ``Xc = sum_k s_k u_k v_k^T`` and ``p_k = ||u_k^T Yc||^2``, ridge at ``lam`` shrinks
    component ``k`` by ``t_k = s_k^2 / (s_k^2 + lam)``, so ``RSS(lam) = sum_k (1 - t_k)^2 p_k +
    (||Yc||^2 - sum_k p_k)`` and ``df(lam) = sum_k t_k``; ``GCV = RSS / (n - 1 - df)^2`` (the
    intercept uses one degree of freedom). The grid is scored in float64 (vectors only).
    """
    n, d_t = xc.shape
    side = "primal" if primal else "dual"
    if mean_eig == 0:
        # Constant teacher anchors: nothing to regress on.
        zero = xc.new_zeros(d_t, yc.shape[1])
        return zero, {"lam_eff": 0.0, "lam": None, "side": side, "solver": "gcv-eigh"}
    if primal:
        evals, vecs = torch.linalg.eigh(xc.T @ xc)
        coef = vecs.T @ (xc.T @ yc)  # v_k^T Xc^T Yc = s_k u_k^T Yc
    else:
        evals, vecs = torch.linalg.eigh(xc @ xc.T)
        coef = vecs.T @ yc  # u_k^T Yc
    evals = evals.clamp_min(0)
    e64 = evals.double()
    alive = e64 > e64.max() * max(n, d_t) * torch.finfo(xc.dtype).eps
    p64 = coef.double().pow(2).sum(dim=1)
    if primal:
        p64 = torch.where(alive, p64 / e64.clamp_min(torch.finfo(torch.float64).tiny), 0.0)
    else:
        p64 = torch.where(alive, p64, 0.0)
    # ||Yc||^2 in the input dtype (a float64 copy of 10^5 x 1024 anchors would cost more than
    # the Gram): its rounding shifts RSS by the same amount at every strength.
    outside = max(float(torch.linalg.matrix_norm(yc)) ** 2 - float(p64.sum()), 0.0)
    grid = torch.tensor(GCV_GRID, dtype=torch.float64, device=xc.device) * mean_eig
    shrink = e64[None, :] / (e64[None, :] + grid[:, None])  # [grid, r]
    rss = ((1 - shrink) ** 2 * p64[None, :]).sum(dim=1) + outside
    dof = n - 1 - shrink.sum(dim=1)
    gcv = torch.where(dof > 1e-6, rss / dof.clamp_min(1e-6) ** 2, torch.inf)
    best = int(torch.argmin(gcv))
    lam_eff = float(grid[best])
    inv = (1.0 / (evals + lam_eff)).to(xc.dtype)
    sol = vecs @ (coef * inv[:, None])
    weight = sol if primal else xc.T @ sol
    info = {
        "lam_eff": lam_eff,
        "lam": GCV_GRID[best],
        "gcv": float(gcv[best]),
        "side": side,
        "solver": "gcv-eigh",
    }
    return weight, info


class RidgeMap(AlignmentMap):
    """Ridge least squares with an unpenalised intercept; see module doc.

    Args:
        lam: regularisation strength (``>= 0``), or ``"auto"`` (default): chosen by generalised
            cross-validation among :data:`GCV_GRID` relative strengths (see :func:`_ridge_gcv`).
            A fixed small ``lam`` overfits badly when the anchor count is close to ``d_T``
            (the interpolation peak); ``"auto"`` avoids it at the cost of one eigendecomposition
            instead of a Cholesky factorisation.
        relative: scale a numeric ``lam`` by the mean eigenvalue of the teacher Gram matrix,
            ``||Xc||_F^2 / d_T`` (default), so it is unit-free; else use ``lam`` as is.
    """

    method = "ridge"
    state_keys = ("mean_x", "mean_y", "weight")

    def __init__(self, *, lam: float | str = "auto", relative: bool = True) -> None:
        super().__init__()
        self.options = {"lam": _check_lam(lam), "relative": bool(relative)}

    def _fit(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        xc, mean_x = _centre(x)
        yc, mean_y = _centre(y)
        weight, info = _ridge_solve(xc, yc, self.options["lam"], self.options["relative"])
        self.fit_info = info
        return {"mean_x": mean_x, "mean_y": mean_y, "weight": weight}

    def _apply(self, x: torch.Tensor) -> torch.Tensor:
        s = self.state
        return torch.addmm(s["mean_y"], x - s["mean_x"], s["weight"])

    def _expected_shapes(self, d_t: int, d_s: int) -> dict[str, tuple[int, ...] | None]:
        return {"weight": (d_t, d_s)}


class MLPMap(AlignmentMap):
    """Residual linear part plus one hidden GELU layer, trained with AdamW; see module doc.

    Args:
        hidden: hidden units ``h``.
        steps: maximum optimiser steps.
        lr: AdamW learning rate.
        weight_decay: AdamW decoupled weight decay on the hidden layer (``A``, ``B``); the
            ridge-initialised linear part and the biases are not decayed.
        batch_size: anchors per step (full batch when the training split is smaller).
        val_fraction: share of anchors held out for early stopping, at most ``max_val`` rows;
            with fewer than 2 held-out rows (``n < 20`` at the default), no early stopping and
            the state after the last step is kept.
        max_val: cap on held-out rows (the validation loss is computed every ``eval_every``).
        eval_every: steps between validation evaluations.
        patience: evaluations without improvement before stopping.
        lam: ridge strength of the linear initialisation, relative or ``"auto"`` (as
            :class:`RidgeMap`).
        seed: seeds the split, the initialisation and the batches (a CPU generator, so the
            random draws are the same on every device).
    """

    method = "mlp"
    state_keys = (
        "mean_x",
        "scale_x",
        "mean_y",
        "scale_y",
        "linear.weight",
        "linear.bias",
        "hidden.weight",
        "hidden.bias",
        "out.weight",
    )

    def __init__(
        self,
        *,
        hidden: int = 128,
        steps: int = 500,
        lr: float = 1e-2,
        weight_decay: float = 1e-2,
        batch_size: int = 256,
        val_fraction: float = 0.1,
        max_val: int = 8192,
        eval_every: int = 25,
        patience: int = 8,
        lam: float | str = "auto",
        seed: int = 0,
    ) -> None:
        super().__init__()
        ints = {"hidden": hidden, "batch_size": batch_size, "eval_every": eval_every}
        for name, value in ints.items():
            if int(value) < 1:
                raise UsageError(f"mlp {name} must be >= 1, got {value}")
        if int(steps) < 0 or int(patience) < 1 or int(max_val) < 0:
            raise UsageError("mlp steps must be >= 0, patience >= 1, max_val >= 0")
        if not 0.0 <= val_fraction < 1.0:
            raise UsageError(f"mlp val_fraction must be in [0, 1), got {val_fraction}")
        if not (lr > 0 and weight_decay >= 0):
            raise UsageError("mlp lr must be > 0 and weight_decay >= 0")
        self.options = {
            "hidden": int(hidden),
            "steps": int(steps),
            "lr": float(lr),
            "weight_decay": float(weight_decay),
            "batch_size": int(batch_size),
            "val_fraction": float(val_fraction),
            "max_val": int(max_val),
            "eval_every": int(eval_every),
            "patience": int(patience),
            "lam": _check_lam(lam),
            "seed": int(seed),
        }

    @staticmethod
    def _forward(p: Mapping[str, torch.Tensor], u: torch.Tensor) -> torch.Tensor:
        lin = torch.addmm(p["linear.bias"], u, p["linear.weight"])
        return lin + F.gelu(torch.addmm(p["hidden.bias"], u, p["hidden.weight"])) @ p["out.weight"]

    def _fit(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        o = self.options
        n, d_t = x.shape
        d_s = y.shape[1]
        dev, dt = x.device, x.dtype
        gen = torch.Generator().manual_seed(o["seed"])
        perm = torch.randperm(n, generator=gen).to(dev)
        n_val = min(int(n * o["val_fraction"]), o["max_val"])
        if n_val < 2:
            n_val = 0
        val_idx, train_idx = perm[:n_val], perm[n_val:]
        # Standardise with training statistics: one scalar per side (the RMS of a centred
        # coordinate), so the geometry inside each space is untouched and Adam's step sizes mean
        # the same at every width and unit. Indexing copies, so this works in place.
        u_tr, mean_x, scale_x = _standardise_(x[train_idx])
        v_tr, mean_y, scale_y = _standardise_(y[train_idx])
        u_val = (x[val_idx] - mean_x) / scale_x
        v_val = (y[val_idx] - mean_y) / scale_y
        w0, _ = _ridge_solve(u_tr, v_tr, o["lam"], relative=True)
        h = o["hidden"]
        bound = 1.0 / math.sqrt(d_t)
        params = {
            "linear.weight": w0,
            "linear.bias": torch.zeros(d_s, dtype=dt),
            "hidden.weight": (torch.rand(d_t, h, generator=gen, dtype=dt) * 2 - 1) * bound,
            "hidden.bias": (torch.rand(h, generator=gen, dtype=dt) * 2 - 1) * bound,
            "out.weight": torch.zeros(h, d_s, dtype=dt),
        }
        params = {k: v.to(dev).requires_grad_(True) for k, v in params.items()}
        decay = [params["hidden.weight"], params["out.weight"]]
        no_decay = [params["linear.weight"], params["linear.bias"], params["hidden.bias"]]
        opt = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": o["weight_decay"]},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=o["lr"],
        )

        def val_loss() -> float:
            with torch.no_grad():
                return float(F.mse_loss(self._forward(params, u_val), v_val))

        best = {k: v.detach().clone() for k, v in params.items()}
        best_loss = val_loss() if n_val else math.inf
        init_loss, best_step, bad, step = best_loss, 0, 0, 0
        n_tr, bs = u_tr.shape[0], min(o["batch_size"], u_tr.shape[0])
        order, cursor = torch.randperm(n_tr, generator=gen).to(dev), 0
        total = max(o["steps"], 1)
        warmup = max(1, total // 10)
        with torch.enable_grad():
            for step in range(1, o["steps"] + 1):
                if bs == n_tr:
                    ub, vb = u_tr, v_tr
                else:
                    if cursor + bs > n_tr:
                        order, cursor = torch.randperm(n_tr, generator=gen).to(dev), 0
                    idx = order[cursor : cursor + bs]
                    cursor += bs
                    ub, vb = u_tr[idx], v_tr[idx]
                factor = (
                    min(1.0, step / warmup) * 0.5 * (1 + math.cos(math.pi * (step - 1) / total))
                )
                for group in opt.param_groups:
                    group["lr"] = o["lr"] * factor
                opt.zero_grad(set_to_none=True)
                loss = F.mse_loss(self._forward(params, ub), vb)
                loss.backward()
                opt.step()
                if n_val and (step % o["eval_every"] == 0 or step == o["steps"]):
                    current = val_loss()
                    if not math.isfinite(current):
                        break
                    if current < best_loss:
                        best_loss, best_step, bad = current, step, 0
                        best = {k: v.detach().clone() for k, v in params.items()}
                    else:
                        bad += 1
                        if bad >= o["patience"]:
                            break
        # No held-out rows: keep the last state, unless training diverged (then the ridge
        # initialisation, still in ``best``).
        if not n_val and all(bool(torch.isfinite(v).all()) for v in params.values()):
            best = {k: v.detach().clone() for k, v in params.items()}
            best_step = step
        self.fit_info = {
            "steps_run": step,
            "best_step": best_step,
            "n_train": int(n_tr),
            "n_val": int(n_val),
            "val_mse_ridge": init_loss if n_val else None,
            "val_mse_best": best_loss if n_val else None,
        }
        return {
            "mean_x": mean_x,
            "scale_x": scale_x,
            "mean_y": mean_y,
            "scale_y": scale_y,
            **best,
        }

    def _apply(self, x: torch.Tensor) -> torch.Tensor:
        s = self.state
        u = (x - s["mean_x"]) / s["scale_x"]
        return s["mean_y"] + s["scale_y"] * self._forward(s, u)

    def _expected_shapes(self, d_t: int, d_s: int) -> dict[str, tuple[int, ...] | None]:
        h = self.state["hidden.bias"].shape[0] if self.state["hidden.bias"].dim() == 1 else -1
        return {
            "scale_x": (),
            "scale_y": (),
            "linear.weight": (d_t, d_s),
            "linear.bias": (d_s,),
            "hidden.weight": (d_t, h),
            "hidden.bias": (h,),
            "out.weight": (h, d_s),
        }


#: method name -> map class; ``ALIGNERS[name](**options).fit(x, y)``.
ALIGNERS: dict[str, type[AlignmentMap]] = {
    "procrustes": ProcrustesMap,
    "ridge": RidgeMap,
    "mlp": MLPMap,
}


def _aligner(method: str) -> type[AlignmentMap]:
    try:
        return ALIGNERS[method]
    except (KeyError, TypeError):
        raise UsageError(
            f"unknown alignment method {method!r}; known: {', '.join(ALIGNERS)}"
        ) from None


def fit_alignment(method: str, x: torch.Tensor, y: torch.Tensor, **options: Any) -> AlignmentMap:
    """Fit the map called ``method`` on paired anchors.

    Args:
        method: a key of :data:`ALIGNERS` (``procrustes``, ``ridge``, ``mlp``).
        x: teacher states ``[n, d_T]``.
        y: student states ``[n, d_S]``.
        **options: the method's keyword options (see its class).

    Returns:
        The fitted map: call it on teacher states ``[..., d_T]`` to get student states
        ``[..., d_S]``; ``fit_info`` holds its diagnostics.

    Raises:
        UsageError: ``USAGE`` on an unknown method or option, or bad anchors (unpaired,
            not float32/float64, non-finite, fewer than 2).

    Example:
        >>> import torch
        >>> import m2kt_ref
        >>> import m2kt_ref.transfer as mt
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(40, 6, generator=g, dtype=torch.float64)   # teacher width 6
        >>> y = x @ torch.randn(6, 4, generator=g, dtype=torch.float64)  # student width 4
        >>> cal = mt.fit_alignment("ridge", x, y, lam=0.0)
        >>> cal(x).shape, torch.allclose(cal(x), y)
        (torch.Size([40, 4]), True)
        >>> try:
        ...     mt.fit_alignment("cca", x, y)
        ... except m2kt_ref.UsageError as exc:
        ...     print(exc.code)
        USAGE
    """
    cls = _aligner(method)
    try:
        aligner = cls(**options)
    except TypeError as exc:
        raise UsageError(f"bad option for {method}: {exc}") from None
    return aligner.fit(x, y)


def map_from_state(method: str, state: Mapping[str, torch.Tensor]) -> AlignmentMap:
    """Rebuild a fitted map of ``method`` from its :meth:`AlignmentMap.to_state` tensors.

    Raises:
        UsageError: ``USAGE`` on an unknown method or a state that does not fit it.
    """
    return _aligner(method).from_state(state)


def anchor_curve(
    method: str,
    x: torch.Tensor,
    y: torch.Tensor,
    counts: Iterable[int] | None = None,
    *,
    seed: int = 0,
    test_size: float | int = 0.2,
    k: int = 10,
    **options: Any,
) -> list[dict[str, Any]]:
    """Held-out quality against the number of anchors used to fit.

    One seeded permutation splits the rows into a fixed test set (the first ``test_size``
    rows) and a pool; the fit for ``c`` anchors uses the first ``c`` rows of the pool, so the
    training sets are nested and only the count changes between points.

    Args:
        method: a key of :data:`ALIGNERS`.
        x, y: all paired anchors ``[n, d_T]``, ``[n, d_S]``.
        counts: anchor counts to fit on, each in ``[2, n - n_test]`` (order kept); default
            :func:`default_counts` of the pool size (8, 16, 32, ... and the whole pool).
        seed: seeds the split, and the fit itself for methods with a ``seed`` option (mlp).
        test_size: held-out rows, a fraction in ``(0, 1)`` or a count ``>= 2``.
        k: CSLS neighbourhood size.
        **options: the method's options.

    Returns:
        ``[{"anchors": c, **evaluate_alignment(...)}, ...]``, one entry per count.

    Raises:
        UsageError: ``USAGE`` on a bad count, test size, method or anchors.
    """
    _aligner(method)
    _check_pair(x, y)
    n = x.shape[0]
    if isinstance(test_size, float) and 0.0 < test_size < 1.0:
        n_test = round(n * test_size)
    elif isinstance(test_size, int) and not isinstance(test_size, bool):
        n_test = test_size
    else:
        raise UsageError(f"test_size must be a fraction in (0, 1) or a count: {test_size}")
    pool_size = n - n_test
    if n_test < 2 or pool_size < 2:
        raise UsageError(f"cannot split {n} anchors into a test set of {n_test} and a pool")
    counts = default_counts(pool_size) if counts is None else [int(c) for c in _as_sequence(counts)]
    bad = [c for c in counts if not 2 <= c <= pool_size]
    if bad or not counts:
        raise UsageError(f"anchor counts must lie in [2, {pool_size}]; got {counts}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(x.device)
    test, pool = perm[:n_test], perm[n_test:]
    x_test, y_test = x[test], y[test]
    if "seed" in inspect.signature(_aligner(method)).parameters:
        options = {**options, "seed": seed}
    out = []
    for c in counts:
        fitted = fit_alignment(method, x[pool[:c]], y[pool[:c]], **options)
        out.append({"anchors": c, **evaluate_alignment(fitted, x_test, y_test, k=k)})
    return out


def default_counts(pool_size: int, start: int = 8) -> list[int]:
    """Doubling counts from ``start`` (at least 2) below ``pool_size``, then ``pool_size``."""
    counts, c = [], max(2, start)
    while c < pool_size:
        counts.append(c)
        c *= 2
    return [*counts, pool_size]


def _as_sequence(values: Iterable[int]) -> Sequence[int]:
    if isinstance(values, (str, bytes)):
        raise UsageError("anchor counts must be integers")
    return list(values)
