"""M networks of one recipe stacked along a leading model dimension, with the training step written out.

`StackedBNNs(recipe, seeds, n_in)` holds the latent weights (M, fan_in, fan_out), batch-norm parameters and
buffers (M, fan_out) and the head (M, n, classes) of M `BNN`s, each initialised as `train_bnn` initialises it for
its seed. Its forward and backward call, op for op, the CPU kernels autograd runs for `train_bnn`'s graph: ops
that are exact (the forward products: integers below 2**24 in float32) or elementwise run once on the stack;
ops that sum floats over the batch (batch-norm and its backward, the backward products, the bias and scale
gradients, the loss value) run model by model on (B, n) slices laid out as `train_bnn`'s tensors, because their
kernels round differently for other shapes (batch-norm vectorises over channels and rounds its scalar tail
otherwise; MKL's batched product rounded 81 x 512 @ 512 x 10 differently for the middle matrix of three).
Why this gives `train_bnn`'s networks bit for bit is set out in `ibnn.nn.batched`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .binary import BNN, N_CLASSES

#: batch-norm's constants: torch's defaults, as train_bnn's nn.BatchNorm1d uses them.
BN_MOMENTUM = 0.1
BN_EPS = 1e-5
#: Batch size of the batch-norm recalibration pass (recalibrate_bn's default).
RECAL_BATCH = 1000

_ONE = torch.ones(())
_ZERO = torch.zeros(())       # nll_loss_backward's total_weight (unused without reduction)
_INVERSE: dict = {}


def sign(x: torch.Tensor) -> torch.Tensor:
    """binary.binarize bit for bit in one float kernel: copysign(1, x + 0.0) is +1 for x >= 0 (x + 0.0 turns
    -0.0 into +0.0); the CPU's bool kernels of torch.where are several times slower."""
    return torch.copysign(_ONE if x.dtype == torch.float32 else x.new_ones(()), x + 0.0)


def _stack(tensors: list) -> torch.Tensor:
    """torch.stack, without the copy for a single tensor."""
    return tensors[0].unsqueeze(0) if len(tensors) == 1 else torch.stack(tensors)


def _ste_mask(x: torch.Tensor) -> torch.Tensor:
    """1[|x| <= 1] in x's float dtype (SignSTE's gradient mask; a comparison written into floats)."""
    return torch.le(x.abs(), 1, out=torch.empty_like(x))


def _inverse_batch(M: int, B: int) -> torch.Tensor:
    """(M * B,) float32 1 / B, the gradient of a mean over B (float32 division, as nll_loss's mean)."""
    if (M, B) not in _INVERSE:
        _INVERSE[(M, B)] = torch.full((M * B,), float(torch.ones(()) / B))
    return _INVERSE[(M, B)]


def _init_bnn(recipe, seed: int, n_in: int) -> BNN:
    """The BNN train_bnn starts from for this seed (same RNG stream: manual_seed(seed), then construction)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return BNN(recipe.hidden, recipe.readout, n_in=n_in, bits=recipe.bits)


def _bn_forward(z: torch.Tensor, bn: list, momentum: float):
    """Training-mode batch-norm of each model's (B, n) slice with train_bnn's kernel. bn: per model (gamma, beta,
    running mean, running var), the statistics updated in place. Returns (out (M, B, n), per model
    (save_mean, save_invstd))."""
    out, saved, n = torch.empty_like(z), [], z.shape[2]
    for m, (gamma, beta, mean, var) in enumerate(bn):
        _, sm, si = torch.ops.aten.native_batch_norm.out(z[m], gamma, beta, mean, var, True, momentum, BN_EPS,
                                                         out=out[m], save_mean=z.new_empty(n),
                                                         save_invstd=z.new_empty(n))
        saved.append((sm, si))
    return out, saved


def _integer_thresholds(gamma, beta, mean, var, bound: float):
    """(flip, theta) float32 per channel: BN(z) + sign is +1 iff z * flip >= theta, for integer |z| < bound.

    The threshold t and the cases of binary.bn_threshold (float64; gamma < 0 flips, gamma == 0 is constant by
    the sign of beta), made integer as folded.fold_layer does."""
    gamma, beta = gamma.detach().double(), beta.detach().double()
    sd = torch.sqrt(var.double() + BN_EPS)
    safe = torch.where(gamma == 0, torch.ones_like(gamma), gamma)
    t = torch.nan_to_num((mean.double() - beta * sd / safe).clamp(-bound, bound), nan=0.0)
    big = float(int(bound))
    theta = torch.where(gamma > 0, torch.ceil(t), torch.ceil(-t))
    theta = torch.where(gamma == 0, torch.where(beta >= 0, -big, big), theta)
    flip = torch.where(gamma < 0, -1.0, 1.0)
    return flip.float(), theta.float()


class StackedBNNs:
    """M networks of one recipe (topology, readout, bits, lr), parameters stacked along a model dimension.

    Parameters live in `latent` (the weights clipped to [-1, 1]: per layer, then the digital head) and `other`
    (batch-norm gains, biases, the head's bias, the logit scale) until `bind` replaces them by views of the
    optimiser's flat buffer. Each model draws its batch order from its own torch.Generator(seed).
    """

    def __init__(self, recipe, seeds: list[int], n_in: int):
        self.recipe, self.seeds, self.n_in = recipe, list(seeds), n_in
        nets = [_init_bnn(recipe, s, n_in) for s in self.seeds]
        self.M, L = len(nets), len(recipe.hidden)
        self.bounds = [l.bound for l in nets[0].layers]
        self.votes = None if recipe.readout == "digital" else recipe.hidden[-1] // N_CLASSES
        self.gens = [torch.Generator().manual_seed(s) for s in self.seeds]

        def stacked(get):
            return [torch.stack([get(n, i).detach() for n in nets]) for i in range(L)]

        latent = stacked(lambda n, i: n.layers[i].weight)
        other = stacked(lambda n, i: n.layers[i].bn.weight) + stacked(lambda n, i: n.layers[i].bn.bias)
        if self.votes is None:
            latent.append(torch.stack([n.head.weight.detach() for n in nets]))
            other.append(torch.stack([n.head.bias.detach() for n in nets]))
        other.append(torch.stack([n.head.log_scale.detach() for n in nets]))
        # SignSTE's gradient mask is 1 on every latent weight: |w| < 1 at initialisation (uniform(-1, 1) /
        # sqrt(fan_in)) and the clip keeps |w| <= 1, so its backward is the identity on them.
        if any(bool((t.abs() > 1).any()) for t in latent):
            raise ValueError("initial latent weights outside [-1, 1]: the straight-through mask would not be 1")
        self.latent, self.other = latent, other
        self.running_mean = stacked(lambda n, i: n.layers[i].bn.running_mean)
        self.running_var = stacked(lambda n, i: n.layers[i].bn.running_var)
        self.batches_tracked = 0
        self.bind(latent + other)

    def bind(self, params: list[torch.Tensor]):
        """Use `params` (in the order latent + other, e.g. views of a flat buffer) as this stack's parameters."""
        L, n_lat = len(self.recipe.hidden), len(self.latent)
        lat, oth = params[:n_lat], params[n_lat:]
        self.W = lat[:L]
        self.Wh = lat[L] if self.votes is None else None
        self.gamma, self.beta = oth[:L], oth[L:2 * L]
        self.bh = oth[2 * L] if self.votes is None else None
        self.log_scale = oth[-1]
        # per-model views, made once (the buffers are updated in place)
        self.bn = [[(self.gamma[i][m], self.beta[i][m], self.running_mean[i][m], self.running_var[i][m])
                    for m in range(self.M)] for i in range(L)]
        self.scales = [self.log_scale[m] for m in range(self.M)]

    def new_epoch(self, x: torch.Tensor, y: torch.Tensor):
        """Gather every model's epoch in its own seeded order: (M, N, n_in) uint8 codes and (M, N) labels."""
        n = x.shape[0]
        perm = torch.stack([torch.randperm(n, generator=g) for g in self.gens]).reshape(-1)
        self.x_ep = x.index_select(0, perm).view(self.M, n, -1)
        self.y_ep = y.index_select(0, perm).view(self.M, n)

    def forward(self, xb: torch.Tensor, momentum: float = BN_MOMENTUM, keep: bool = True):
        """Training-mode forward of the M models on (M, B, n_in) codes: (logits (M, B, classes), what the
        backward needs (the layers' tensors only if `keep`)). Updates the batch-norm running statistics."""
        layers, a = [], xb
        for i, W in enumerate(self.W):
            Wb = sign(W)
            z = torch.bmm(a, Wb)                                   # exact integers
            h, saved = _bn_forward(z, self.bn[i], momentum)
            if keep:
                layers.append((a, Wb, z, _ste_mask(h), saved))
            a = sign(h)
        Whb = None
        if self.votes is None:
            Whb = sign(self.Wh)               # (W^T a^T)^T: exact, and several times faster for 10 columns
            s = torch.bmm(Whb.transpose(1, 2), a.transpose(1, 2)).transpose(1, 2).contiguous()
            s = s + torch.round(self.bh).unsqueeze(1)
        else:
            s = a.view(self.M, a.shape[1], N_CLASSES, self.votes).sum(-1)
        e = _stack([t.exp() for t in self.scales])                # 0-dim exp, as train_bnn's
        logits = s * e.view(-1, 1, 1)
        return logits, (layers, a, Whb, s, e)

    def backward(self, cache, dlogits: torch.Tensor) -> tuple[list, list]:
        """Gradients (latent, other) of the summed per-model losses, given d loss / d logits (M, B, classes)."""
        layers, a, Whb, s, e = cache
        M = self.M
        ds = dlogits * e.view(-1, 1, 1)
        prod = dlogits * s
        g_scale = _stack([prod[m].sum() for m in range(M)]) * e           # (M,): sum_to(()), then exp'
        if self.votes is None:
            g_bias = _stack([ds[m].sum([0], keepdim=True).view(-1) for m in range(M)])
            g_head = _stack([a[m].t().mm(ds[m]) for m in range(M)])
            g = _stack([ds[m].mm(Whb[m].t()) for m in range(M)])
        else:
            g = ds.unsqueeze(-1).expand(*ds.shape, self.votes).reshape(a.shape)
        g_W, g_gamma, g_beta = [None] * len(layers), [None] * len(layers), [None] * len(layers)
        for i in reversed(range(len(layers))):
            a_in, Wb, z, mask, saved = layers[i]
            gh = g * mask                                          # SignSTE's backward
            gz, gg, gb = zip(*(torch.ops.aten.native_batch_norm_backward(
                gh[m], z[m], gamma, mean, var, sm, si, True, BN_EPS, [True, True, True])
                for m, ((gamma, _, mean, var), (sm, si)) in enumerate(zip(self.bn[i], saved))))
            g_gamma[i], g_beta[i] = _stack(gg), _stack(gb)
            g_W[i] = _stack([a_in[m].t().mm(gz[m]) for m in range(M)])
            if i:
                g = _stack([gz[m].mm(Wb[m].t()) for m in range(M)])
        latent = g_W + ([g_head] if self.votes is None else [])
        other = g_gamma + g_beta + ([g_bias] if self.votes is None else []) + [g_scale]
        return latent, other

    def step(self, s: int, batch_size: int):
        """Forward and backward on batch [s, s + batch_size) of the epoch: (latent grads, other grads, the
        per-model loss train_bnn records (M,), per-model correct count (M,))."""
        xb = self.x_ep[:, s:s + batch_size].float()
        yb = self.y_ep[:, s:s + batch_size].reshape(-1)
        logits, cache = self.forward(xb)
        self.batches_tracked += 1
        M, B, k = logits.shape
        logp = torch.log_softmax(logits.view(M * B, k), 1)
        # mean cross-entropy per model: d loss_m / d logp = -1/B at the target (nll_loss's backward)
        dlogp = torch.ops.aten.nll_loss_backward(_inverse_batch(M, B), logp, yb, None, 0, -100, _ZERO)
        dlogits = torch.ops.aten._log_softmax_backward_data(dlogp, logp, 1, logp.dtype).view(M, B, k)
        latent, other = self.backward(cache, dlogits)
        lp, yv = logp.view(M, B, k), yb.view(M, B)
        value = _stack([F.nll_loss(lp[m], yv[m]) for m in range(M)])         # train_bnn's reduction order
        correct = (logits.argmax(2) == yv).sum(1)
        return latent, other, value, correct

    def predict(self, codes: torch.Tensor) -> torch.Tensor:
        """Eval-mode labels (M, N) of every model, exactly as BNN.predict.

        BNN.predict compares the integer z = x @ W_b with the float64 batch-norm threshold t (z >= t, or z <= t
        for a negative gain, constant for a zero gain); for an integer z that is z >= ceil(t), or -z >= ceil(-t),
        so the comparison runs on float32 integers (the folded form, folded.fold_layer)."""
        a = codes.unsqueeze(0).expand(self.M, -1, -1)
        for i, W in enumerate(self.W):
            z = torch.bmm(a, sign(W))                              # exact integers
            flip, theta = _integer_thresholds(self.gamma[i], self.beta[i], self.running_mean[i],
                                              self.running_var[i], self.bounds[i])
            a = torch.ge(z * flip.unsqueeze(1), theta.unsqueeze(1), out=torch.empty_like(z)).mul_(2).sub_(1)
        if self.votes is None:
            s = torch.bmm(a, sign(self.Wh)) + torch.round(self.bh).unsqueeze(1)
        else:
            s = a.reshape(self.M, a.shape[1], N_CLASSES, self.votes).sum(-1)
        return s.argmax(2)

    def recalibrate(self, x: torch.Tensor):
        """recalibrate_bn for every model (x: uint8 codes (N, n_in)): cumulative batch-norm statistics over each
        model's own seeded permutation of the training codes, in batches of RECAL_BATCH."""
        n = x.shape[0]
        perm = torch.stack([torch.randperm(n, generator=g) for g in self.gens]).reshape(-1)
        xr = x.index_select(0, perm).view(self.M, n, -1)
        for rm, rv in zip(self.running_mean, self.running_var):
            rm.zero_()
            rv.fill_(1)
        self.batches_tracked = 0
        for s in range(0, n, RECAL_BATCH):
            if n - s >= 2:
                self.batches_tracked += 1
                self.forward(xr[:, s:s + RECAL_BATCH].float(), 1.0 / float(self.batches_tracked), keep=False)

    def models(self) -> list[BNN]:
        """The trained networks as `BNN` (eval mode, own storage), one per seed."""
        out = []
        for m in range(self.M):
            net = BNN(self.recipe.hidden, self.recipe.readout, n_in=self.n_in, bits=self.recipe.bits)
            sd = {}
            for i in range(len(self.recipe.hidden)):
                sd[f"layers.{i}.weight"] = self.W[i][m]
                sd[f"layers.{i}.bn.weight"] = self.gamma[i][m]
                sd[f"layers.{i}.bn.bias"] = self.beta[i][m]
                sd[f"layers.{i}.bn.running_mean"] = self.running_mean[i][m]
                sd[f"layers.{i}.bn.running_var"] = self.running_var[i][m]
                sd[f"layers.{i}.bn.num_batches_tracked"] = torch.tensor(self.batches_tracked)
            if self.votes is None:
                sd["head.weight"], sd["head.bias"] = self.Wh[m], self.bh[m]
            sd["head.log_scale"] = self.log_scale[m]
            net.load_state_dict({k: v.detach().clone() for k, v in sd.items()})
            out.append(net.eval())
        return out
