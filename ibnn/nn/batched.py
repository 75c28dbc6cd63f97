"""Training many BNNs at once: notebook 03's topology candidates and seeds in one lockstep pass, each network
bit for bit the one `train_bnn` trains alone.

`train_jobs(jobs, codes, labels, val_codes, val_labels)` trains a list of (Recipe, seed) jobs together and
returns, per job, the `TrainResult` that `train_bnn(codes, labels, val_codes, val_labels, recipe=recipe,
seed=seed)` returns: the same `BNN` (parameters and batch-norm buffers, bit for bit) and the same history, so
`fold`, `save_checkpoint` and the folded == trained check apply unchanged. `select_and_train` is notebook 03's
plan: the candidates on the first seed together, the best on validation chosen, then its other seeds together.

How the jobs share one pass. Jobs with the same (epochs, batch_size) step in lockstep; among them, jobs with the
same (hidden, readout, bits, lr) form a `stacked.StackedBNNs` whose M networks share each op. Per step: each
model's batch of its own seeded permutation (gathered once per epoch, as uint8), the stacked forward and the
written-out backward, then one Adam step and one clip on a flat buffer holding every parameter of every model
(one buffer per learning rate). Losses and counts are read once per epoch, so no step waits on the host.

Why a job's network does not depend on its companions and equals train_bnn's (bit for bit):
- the forward matrix products are integer arithmetic held exactly in float32 (codes <= 2**bits - 1, weights and
  activations +-1, |x @ W_b| <= fan_in * (2**bits - 1) < 2**24), so torch.bmm over the stack is exact in any
  summation order; the head's product is taken as (W^T a^T)^T, equally exact and faster for 10 columns;
- the ops that sum floats over the batch run model by model on slices laid out as train_bnn's tensors, with
  train_bnn's kernels (see `stacked`);
- everything else is elementwise or per row (sign, mask, log-softmax, Adam -- torch.optim.Adam's single-tensor
  formula, which train_bnn uses on the CPU -- and the clip); the CPU's elementwise kernels give the same bits in
  their vectorised body and their scalar tail, so a parameter's place in the flat buffer does not matter; exp,
  whose vectorised form is another implementation than its scalar one, is taken per model on 0-dim tensors;
- each job builds its BNN under torch.manual_seed(seed), draws its permutations from its own
  torch.Generator(seed) and follows the same cosine learning-rate schedule, as train_bnn does.
These are properties of the kernels of one torch build on one thread, so they are tested, not assumed:
tests/test_nn_batched.py compares train_jobs with train_bnn bit for bit (every state-dict tensor and the
history), and a seed alone with the same seed among companions; benchmarks/bench_train.py --full compares the
60-epoch networks with the committed checkpoints. Run with torch.set_num_threads(1), as notebook 03 does:
batch-norm splits its reductions over threads, so train_bnn itself changes with the thread count.

Not covered: train_bnn's `preact_noise` hook (noise-aware training keeps using train_bnn) and soft targets.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Sequence

import torch

from ..repro.device import as_tensor
from ..repro.progress import progress as _progress
from ..validate import check_int
from .binary import N_CLASSES
from .stacked import StackedBNNs
from .train import Recipe, TrainResult, accuracy

#: Adam's constants: torch.optim.Adam's defaults, as train_bnn uses them.
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


@dataclass(frozen=True)
class Job:
    """One network to train: a recipe and the seed of its initialisation and of its batch order."""
    recipe: Recipe
    seed: int = 0

    def __post_init__(self):
        if not isinstance(self.recipe, Recipe):
            raise ValueError(f"recipe={self.recipe!r} must be an ibnn.nn.Recipe")
        object.__setattr__(self, "seed", check_int("seed", self.seed, 0))


def as_jobs(jobs) -> list[Job]:
    """Jobs from a list of `Job` or (recipe, seed) pairs; a ValueError naming the entry otherwise."""
    out = []
    for i, j in enumerate([jobs] if isinstance(jobs, Job) else list(jobs)):
        if isinstance(j, Job):
            out.append(j)
        elif isinstance(j, (tuple, list)) and len(j) == 2:
            try:
                out.append(Job(*j))
            except ValueError as e:
                raise ValueError(f"jobs[{i}]: {e}") from None
        else:
            raise ValueError(f"jobs[{i}]={j!r} must be a Job or a (Recipe, seed) pair")
    if not out:
        raise ValueError("jobs=[] must list at least one (Recipe, seed) job")
    return out


class FlatAdam:
    """Every parameter of many models as views of one flat float32 buffer, updated by one Adam step (the formula
    of torch.optim.Adam's single-tensor path). `latent` tensors come first, so the clip of the latent weights to
    [-1, 1] is one op on a prefix."""

    def __init__(self, latent: list[torch.Tensor], other: list[torch.Tensor], lr: float):
        tensors = latent + other
        sizes = [t.numel() for t in tensors]
        self.flat = torch.cat([t.detach().reshape(-1) for t in tensors])
        self.n_latent = sum(sizes[:len(latent)])
        self.params, o = [], 0
        for t, n in zip(tensors, sizes):
            self.params.append(self.flat[o:o + n].view(t.shape))
            o += n
        self.exp_avg = torch.zeros_like(self.flat)
        self.exp_avg_sq = torch.zeros_like(self.flat)
        self.base_lr, self.steps = lr, 0

    def step(self, grads: list[torch.Tensor], factor: float):
        """One Adam step with `grads` (one per parameter, in order) at lr = base_lr * factor (LambdaLR's product),
        then the clip of the latent weights."""
        grad = torch.cat([g.reshape(-1) for g in grads])
        beta1, beta2 = ADAM_BETAS
        self.steps += 1
        step = float(self.steps)
        self.exp_avg.lerp_(grad, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        step_size = self.base_lr * factor / (1 - beta1 ** step)
        bias_correction2_sqrt = (1 - beta2 ** step) ** 0.5
        denom = (self.exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(ADAM_EPS)
        self.flat.addcdiv_(self.exp_avg, denom, value=-step_size)
        self.flat[:self.n_latent].clamp_(-1, 1)


def _check_data(codes, labels, bits: int):
    """(x float32 (N, n_in), y int64 (N,)) with train_bnn's checks (hard labels only)."""
    x, y = as_tensor(codes).float(), as_tensor(labels)
    if y.ndim != 1:
        raise ValueError(f"labels of shape {tuple(y.shape)} must be (N,) class indices (soft targets: use "
                         "ibnn.nn.train_bnn)")
    y = y.long()
    if x.ndim != 2 or x.shape[0] != y.shape[0] or x.shape[0] < 2:
        raise ValueError(f"codes {tuple(x.shape)} and labels {tuple(y.shape)} must be (N, n_in) and (N,), N >= 2")
    if x.min() < 0 or x.max() > 2 ** bits - 1:
        raise ValueError(f"codes span {x.min():.0f}..{x.max():.0f}; accepted: 0..{2 ** bits - 1} for bits={bits}")
    if y.min() < 0 or y.max() >= N_CLASSES:
        raise ValueError(f"labels span {int(y.min())}..{int(y.max())}; accepted: 0..{N_CLASSES - 1}")
    return x, y


def _bind_flats(groups) -> dict:
    """One FlatAdam per learning rate over the parameters of its groups; each group then uses its views."""
    flats = {}
    for lr in dict.fromkeys(g.recipe.lr for g in groups):
        gs = [g for g in groups if g.recipe.lr == lr]
        f = FlatAdam([t for g in gs for t in g.latent], [t for g in gs for t in g.other], lr)
        lat, oth = 0, sum(len(g.latent) for g in gs)
        for g in gs:
            nl, no = len(g.latent), len(g.other)
            g.bind(f.params[lat:lat + nl] + f.params[oth:oth + no])
            lat, oth = lat + nl, oth + no
        flats[lr] = f
    return flats


def _epoch(groups, flats, factors, n: int, batch_size: int):
    """One epoch of every group in lockstep (factors: the learning-rate factor of each step, in order); returns
    per group (step losses (steps, M), correct (M,))."""
    losses = [[] for _ in groups]
    correct = [torch.zeros(g.M, dtype=torch.int64) for g in groups]
    for s in range(0, n, batch_size):
        grads = {lr: ([], []) for lr in flats}
        for k, g in enumerate(groups):
            latent, other, value, c = g.step(s, batch_size)
            losses[k].append(value)
            correct[k] += c
            grads[g.recipe.lr][0].extend(latent)
            grads[g.recipe.lr][1].extend(other)
        factor = next(factors)
        for lr, f in flats.items():
            f.step(grads[lr][0] + grads[lr][1], factor)
    return [(torch.stack(l), c) for l, c in zip(losses, correct)]


def _cosine(total_steps: int):
    """train_bnn's LambdaLR factors: step k runs at lr * 0.5 (1 + cos(pi min(k, total) / total))."""
    k = 0
    while True:
        yield 0.5 * (1 + math.cos(math.pi * min(k, total_steps) / total_steps))
        k += 1


def _train_lockstep(groups, x, y, val, epochs: int, batch_size: int, progress: bool):
    """Train groups that share (epochs, batch_size) step by step; returns per group, per model, the history."""
    n = x.shape[0]
    flats = _bind_flats(groups)
    factors = _cosine(epochs * math.ceil(n / batch_size))
    sizes = [min(batch_size, n - s) for s in range(0, n, batch_size)]
    hist = [[{"loss": [], "train_acc": []} | ({"val_acc": []} if val else {}) for _ in range(g.M)] for g in groups]
    for _ in _progress(range(epochs), desc="epochs", disable=None if progress else True):
        for g in groups:
            g.new_epoch(x, y)
        out = _epoch(groups, flats, factors, n, batch_size)
        for g, h, (step_losses, correct) in zip(groups, hist, out):
            rows = step_losses.tolist()
            right = (g.predict(val[0]) == val[1]).sum(1).tolist() if val else None
            for m in range(g.M):
                tot = 0.0                       # train_bnn's sum: float(loss) * len(batch), in step order
                for row, size in zip(rows, sizes):
                    tot += row[m] * size
                h[m]["loss"].append(tot / n)
                h[m]["train_acc"].append(int(correct[m]) / n)
                if val:
                    h[m]["val_acc"].append(right[m] / val[0].shape[0])
    return hist


def _lockstep_sets(jobs: list[Job]) -> dict:
    """{(epochs, batch_size): {(hidden, readout, bits, lr): [job index, ...]}}, in job order."""
    sets: dict = {}
    for i, j in enumerate(jobs):
        r = j.recipe
        sets.setdefault((r.epochs, r.batch_size), {}).setdefault((r.hidden, r.readout, r.bits, r.lr), []).append(i)
    return sets


def _train_set(jobs, members: dict, x8, y, val, epochs, batch_size, recalibrate, progress) -> dict:
    """One lockstep set: {job index: TrainResult}; `seconds` is the set's wall time (shared by its jobs)."""
    t0 = time.perf_counter()
    groups = [StackedBNNs(jobs[m[0]].recipe, [jobs[i].seed for i in m], x8.shape[1]) for m in members.values()]
    with torch.inference_mode():                 # no autograd here: skip its dispatch (same kernels)
        hist = _train_lockstep(groups, x8, y, val, epochs, batch_size, progress)
        if recalibrate:
            for g in groups:
                g.recalibrate(x8)
    done = []
    for g, m, h in zip(groups, members.values(), hist):
        for i, model, hm in zip(m, g.models(), h):
            if val and recalibrate:
                hm["val_acc_recalibrated"] = accuracy(model, *val)
            done.append((i, model, hm))
    seconds = time.perf_counter() - t0
    return {i: TrainResult(model, hm, seconds) for i, model, hm in done}


def train_jobs(jobs, codes, labels, val_codes=None, val_labels=None, *, recalibrate: bool = True,
               progress: bool = False) -> list[TrainResult]:
    """Train every (recipe, seed) job together; per job the TrainResult train_bnn would return.

    Args:
        jobs: a list of `Job` or (Recipe, seed) pairs (any mix of topologies, readouts, seeds, lrs, epochs).
        codes, labels: the training split, as for train_bnn (labels (N,) 0..9; no soft targets here).
        val_codes, val_labels: optional validation split: history "val_acc" after every epoch and, with
            `recalibrate`, "val_acc_recalibrated" for the final network, as train_bnn.
        recalibrate: re-estimate the batch-norm statistics for the final binary weights (train_bnn's).
        progress: show an epoch bar.
    Returns:
        one `TrainResult(model, history, seconds)` per job, in job order; `model` is an eval-mode BNN equal to
        train_bnn's for that recipe and seed; `seconds` is the wall time of the lockstep set the job was trained
        in (jobs with the same epochs and batch size train in one pass, one such set after another).
    """
    jobs = as_jobs(jobs)
    bits = min(j.recipe.bits for j in jobs)
    x, y = _check_data(codes, labels, bits)
    val = None if val_codes is None else _check_data(val_codes, val_labels, bits)
    for i, j in enumerate(jobs):
        if x.shape[0] % j.recipe.batch_size == 1:
            raise ValueError(f"jobs[{i}]: batch_size={j.recipe.batch_size} leaves a last batch of one of the "
                             f"{x.shape[0]} images; accepted: a batch size that leaves none or at least two "
                             "(batch-norm needs two)")
    x8 = x.to(torch.uint8)                                        # exact: codes are 0..2**bits - 1 <= 255
    # Every op here has one deterministic CPU kernel, so torch.use_deterministic_algorithms (which train_bnn sets)
    # is not needed: on the CPU it would only fill each new tensor with NaN first (a pass over every output that
    # changes no value; turned off here in case the caller enabled it).
    fill = torch.utils.deterministic.fill_uninitialized_memory
    torch.utils.deterministic.fill_uninitialized_memory = False
    results = {}
    try:
        for (epochs, batch_size), members in _lockstep_sets(jobs).items():
            results.update(_train_set(jobs, members, x8, y, val, epochs, batch_size, recalibrate, progress))
    finally:
        torch.utils.deterministic.fill_uninitialized_memory = fill
    return [results[i] for i in range(len(jobs))]


@dataclass
class Selection:
    """Candidates trained on the first seed, the one chosen on validation, and its runs over the seeds.

    candidates: one TrainResult per candidate recipe, in order; val_acc: each candidate's final validation
    accuracy; chosen: index of the best (the first on ties); recipe: the chosen recipe as trained over the seeds;
    runs: {seed: TrainResult} in seed order (the first seed's is the candidate run when the recipes agree);
    seconds, cpu_seconds: {"candidates", "seeds"}: wall time and this process's CPU time of the two passes (for
    the reader on a shared machine; printed, never stored in results)."""
    candidates: list
    val_acc: list
    chosen: int
    recipe: Recipe
    runs: dict
    seconds: dict
    cpu_seconds: dict


def select_and_train(candidates: Sequence[Recipe], seeds: Sequence[int], codes, labels, val_codes, val_labels, *,
                     epochs: int | None = None, progress: bool = False) -> Selection:
    """Notebook 03's training: every candidate on seeds[0] together, the best on validation chosen, then the
    other seeds of the chosen recipe together (with `epochs` epochs if given, else the candidate's).

    Args:
        candidates: recipes to compare (the caller keeps only those that fit the array).
        seeds: distinct integers >= 0; seeds[0] trains the candidates.
        codes, labels, val_codes, val_labels: training and validation splits (validation picks the candidate).
        epochs: epochs of the seed runs (the candidates train with their own).
    Returns:
        a `Selection`; every network equals train_bnn's for its recipe and seed.
    """
    if not candidates or not all(isinstance(c, Recipe) for c in candidates):
        raise ValueError(f"candidates={candidates!r} must be a non-empty list of ibnn.nn.Recipe")
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence) or not seeds:
        raise ValueError(f"seeds={seeds!r} must be a non-empty list of integers >= 0")
    seeds = [check_int(f"seeds[{i}]", s, 0) for i, s in enumerate(seeds)]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds={seeds} must be distinct")
    if val_codes is None or val_labels is None:
        raise ValueError("val_codes and val_labels are required: the validation split picks the candidate")
    t0, c0 = time.perf_counter(), time.process_time()
    cand = train_jobs([(c, seeds[0]) for c in candidates], codes, labels, val_codes, val_labels, progress=progress)
    t1, c1 = time.perf_counter(), time.process_time()
    val = [accuracy(r.model, val_codes, val_labels) for r in cand]
    best = max(range(len(candidates)), key=lambda i: val[i])
    recipe = candidates[best] if epochs is None else candidates[best].replace(epochs=epochs)
    runs = {seeds[0]: cand[best]} if recipe == candidates[best] else {}
    todo = [s for s in seeds if s not in runs]
    if todo:
        more = train_jobs([(recipe, s) for s in todo], codes, labels, val_codes, val_labels, progress=progress)
        runs.update(zip(todo, more))
    seconds = {"candidates": t1 - t0, "seeds": time.perf_counter() - t1}
    cpu = {"candidates": c1 - c0, "seeds": time.process_time() - c1}
    return Selection(cand, val, best, recipe, {s: runs[s] for s in seeds}, seconds, cpu)
