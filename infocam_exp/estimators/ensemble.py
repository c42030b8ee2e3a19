"""Train many small MLPs at once: stacked weights, one ``torch.baddbmm`` per layer, plain Adam.

A *member* is one network with its own training and validation indices, learning rate and seed
(cross-fitting trains one member per (fold, lr) pair). All active members take one step together;
each is evaluated on its own validation set every ``eval_every`` steps, keeps a snapshot of its
weights at its best validation objective, and stops (is frozen and dropped from the batched step)
after ``patience`` evaluations without improvement or at ``max_steps``. A member's result depends
only on its own data, lr and seed, never on the other members (``tests/estimators``).

Architecture: d -> hidden... -> K, ReLU, the initialisation of ``torch.nn.Linear`` (weights and
biases uniform in +-1/sqrt(fan_in)), the same network as ``infocam_exp.models.mlp.MLP``.
Adam (beta 0.9, 0.999, eps 1e-8, no weight decay), full fp32.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class Member:
    """One network to train: indices into the data, its learning rate and its seed (the seed fixes
    the initial weights and the minibatch order)."""

    train_idx: np.ndarray
    val_idx: np.ndarray
    lr: float
    seed: int


@dataclass
class MemberResult:
    """The best-validation snapshot of one member.

    ``params``: [W1 (in, out), b1 (out,), ...]; ``best_step``: steps taken at the snapshot (0: the
    initial weights); ``steps_trained``: steps taken before it stopped; ``early_stopped``: it
    stopped on patience before ``max_steps``; ``history``: (step, validation value) pairs."""

    params: list[torch.Tensor]
    best_value: float
    best_step: int
    steps_trained: int
    early_stopped: bool
    history: list[tuple[int, float]] = field(default_factory=list)


@dataclass
class TrainConfig:
    """Budget and rule shared by every trained estimator.

    max_steps: Adam steps per member at most; batch_size: minibatch (capped at the member's
    training-set size); eval_every: steps between validation evaluations; patience: evaluations
    without improvement before a member stops; hidden: MLP widths."""

    max_steps: int = 2000
    batch_size: int = 256
    eval_every: int = 25
    patience: int = 6
    hidden: tuple[int, ...] = (100, 100, 100)

    def __post_init__(self) -> None:
        for key in ("max_steps", "batch_size", "eval_every", "patience"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        self.hidden = tuple(int(h) for h in self.hidden)


def init_params(widths: Sequence[int], seed: int) -> list[torch.Tensor]:
    """[W1 (in, out), b1 (out,), ...] initialised as ``torch.nn.Linear`` does, from ``seed``."""
    gen = torch.Generator().manual_seed(int(seed))
    params = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        bound = 1.0 / math.sqrt(a)
        params.append((torch.rand(a, b, generator=gen) * 2 - 1) * bound)
        params.append((torch.rand(b, generator=gen) * 2 - 1) * bound)
    return params


def forward(params: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Stacked MLP: params [W1 (M, in, out), b1 (M, out), ...], x (M, B, d) -> (M, B, K)."""
    h = x
    last = len(params) // 2 - 1
    for i in range(0, len(params), 2):
        h = torch.baddbmm(params[i + 1].unsqueeze(1), h, params[i])
        if i // 2 < last:
            h = torch.relu_(h)
    return h


def forward_one(params: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """One member: params [W1 (in, out), b1 (out,), ...], x (n, d) -> (n, K)."""
    h = x
    last = len(params) // 2 - 1
    for i in range(0, len(params), 2):
        h = torch.addmm(params[i + 1], h, params[i])
        if i // 2 < last:
            h = torch.relu_(h)
    return h


class _Batches:
    """A member's minibatch stream: shuffled passes over its training indices, seeded."""

    def __init__(self, idx: np.ndarray, size: int, seed: int) -> None:
        self.idx = np.asarray(idx)
        self.size = size
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(self.idx)
        self.pos = 0

    def next(self) -> np.ndarray:
        if self.pos + self.size > len(self.order):  # drop the remainder: fixed batch size
            self.order = self.rng.permutation(self.idx)
            self.pos = 0
        out = self.order[self.pos : self.pos + self.size]
        self.pos += self.size
        return out


def train_members(
    x: torch.Tensor,
    y: torch.Tensor,
    members: Sequence[Member],
    num_outputs: int,
    loss_fn: Callable[[torch.Tensor, torch.Tensor, dict], torch.Tensor],
    val_fn: Callable[[list[torch.Tensor], int], float],
    config: TrainConfig,
    state: dict | None = None,
) -> list[MemberResult]:
    """Train ``members`` together; return each one's best-validation snapshot.

    Args:
        x: (N, d) float32 inputs; y: (N,) int64 labels.
        members: the networks to train (indices into x, y).
        num_outputs: K, the width of the last layer.
        loss_fn: (outputs (A, B, K), labels (A, B), state) -> (A,) losses of the A active members
            of a group; ``state`` is the group's dict, whose tensors (first dimension A, one entry
            per member) the loss may set and replace.
        val_fn: (one member's params, its index in ``members``) -> its validation objective on its
            ``val_idx``, higher is better.
        config: budget, batch size, early-stopping rule, widths.
        state: initial loss state (e.g. {"ema_rate": 0.05}), copied to every group; it must hold
            no tensors (the loss adds its per-member tensors itself).
    """
    if not members:
        raise ValueError("train_members needs at least one member")
    widths = [x.shape[1], *config.hidden, num_outputs]
    m_all = len(members)
    init = [init_params(widths, mb.seed) for mb in members]
    params = [torch.stack([p[j] for p in init]) for j in range(len(init[0]))]
    lrs = torch.tensor([mb.lr for mb in members], dtype=x.dtype)
    streams = []
    for mb in members:
        if len(mb.train_idx) < 2 or len(mb.val_idx) < 2:
            raise ValueError(
                f"a member has {len(mb.train_idx)} training and {len(mb.val_idx)} validation samples; "
                "each needs >= 2: use more samples or fewer folds"
            )
        streams.append(_Batches(mb.train_idx, min(config.batch_size, len(mb.train_idx)), mb.seed + 7919))

    best = [[p[i].clone() for p in params] for i in range(m_all)]
    best_value = [val_fn(best[i], i) for i in range(m_all)]
    best_step = [0] * m_all
    history = [[(0, best_value[i])] for i in range(m_all)]
    stale = [0] * m_all
    stopped_at: list[int | None] = [None] * m_all
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    # Members of unequal batch size cannot share one bmm: one group per batch size. Each group
    # holds its active members' weights, Adam moments and loss state stacked; a member that stops
    # is dropped from its group (its best snapshot is kept apart).
    groups = []
    for size in sorted({s.size for s in streams}):
        ids = [i for i in range(m_all) if streams[i].size == size]
        sel = torch.tensor(ids)
        groups.append({
            "ids": ids,
            "params": [p.index_select(0, sel).requires_grad_(True) for p in params],
            "exp_avg": [torch.zeros_like(p.index_select(0, sel)) for p in params],
            "exp_sq": [torch.zeros_like(p.index_select(0, sel)) for p in params],
            "lr": lrs.index_select(0, sel),
            "state": dict(state or {}),
        })
    del params

    step = 0
    while any(grp["ids"] for grp in groups) and step < config.max_steps:
        step += 1
        # every active member has taken `step` steps (members only ever stop, never start late)
        c1, c2 = 1 - beta1**step, 1 - beta2**step
        for grp in groups:
            if not grp["ids"]:
                continue
            work = grp["params"]
            batch = torch.as_tensor(np.stack([streams[i].next() for i in grp["ids"]]))
            loss = loss_fn(forward(work, x[batch]), y[batch], grp["state"]).sum()
            grads = torch.autograd.grad(loss, work)
            with torch.no_grad():
                for j, g in enumerate(grads):
                    m, v = grp["exp_avg"][j], grp["exp_sq"][j]
                    m.mul_(beta1).add_(g, alpha=1 - beta1)
                    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                    shape = (-1,) + (1,) * (g.ndim - 1)
                    denom = (v / c2).sqrt_().add_(eps)
                    work[j].addcdiv_(m * (grp["lr"] / c1).view(shape), denom, value=-1.0)
        if step % config.eval_every == 0 or step == config.max_steps:
            for grp in groups:
                keep = []
                for pos, i in enumerate(grp["ids"]):
                    snap = [p[pos].detach() for p in grp["params"]]
                    value = val_fn(snap, i)
                    history[i].append((step, value))
                    if value > best_value[i]:
                        best_value[i], best_step[i], stale[i] = value, step, 0
                        best[i] = [p.clone() for p in snap]
                    else:
                        stale[i] += 1
                    if stale[i] >= config.patience:
                        stopped_at[i] = step
                    else:
                        keep.append(pos)
                if len(keep) < len(grp["ids"]):
                    sel = torch.tensor(keep, dtype=torch.long)
                    grp["ids"] = [grp["ids"][pos] for pos in keep]
                    with torch.no_grad():
                        grp["params"] = [p.index_select(0, sel).requires_grad_(True) for p in grp["params"]]
                    grp["exp_avg"] = [m.index_select(0, sel) for m in grp["exp_avg"]]
                    grp["exp_sq"] = [v.index_select(0, sel) for v in grp["exp_sq"]]
                    grp["lr"] = grp["lr"].index_select(0, sel)
                    grp["state"] = {k: (v.index_select(0, sel) if torch.is_tensor(v) else v)
                                    for k, v in grp["state"].items()}
    return [
        MemberResult(
            params=best[i],
            best_value=best_value[i],
            best_step=best_step[i],
            steps_trained=stopped_at[i] if stopped_at[i] is not None else step,
            early_stopped=stopped_at[i] is not None,
            history=history[i],
        )
        for i in range(m_all)
    ]
