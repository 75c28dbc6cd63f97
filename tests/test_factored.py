"""Drawing a chip's factored tables (ibnn.circuit.factored, CellModel.cell_table): the subspace iteration gives the
truncated SVD of torch.linalg.svd to the rounding floor of the Gram route, its residual is the factors' true error,
and the blocked cell tables equal the bilinear interpolation they replace up to rounding."""
from __future__ import annotations

import pytest
import torch

from ibnn import params
from ibnn.circuit import factored
from ibnn.circuit.chip import Chip
from ibnn.circuit.nonideal import Nonidealities

P = params.load()


def _tables(scale: float, n: int = 2) -> torch.Tensor:
    ni = Nonidealities(cell_mismatch=scale, dac_mismatch=scale, replica_mismatch=scale)
    chip = Chip(P, n_chips=n, seed=4, nonideal=ni, device="cpu")
    return torch.stack([chip._exact_table(k) for k in range(n)])


@pytest.mark.parametrize("scale", [1.0, 6.0])
def test_factors_are_the_truncated_svd_and_the_residual_is_their_error(scale):
    t = _tables(scale)
    f = factored.factor_tables(iter(t))
    u, s, vh = torch.linalg.svd(t, full_matrices=False)
    tails = torch.stack([torch.sqrt((s[..., r:] ** 2).sum(-1)).amax() for r in range(factored.RANK_MAX + 1)])
    ok = torch.nonzero(tails <= factored.RANK_TOL).flatten()
    assert f.rank == max(1, min(int(ok[0]) if len(ok) else factored.RANK_MAX, factored.RANK_MAX))
    k = f.rank
    best = (u[..., :k] * s[..., None, :k]) @ vh[..., :k, :]
    ab = f.a @ f.b
    assert float((ab - best).abs().max()) < 1e-7              # LSB; the Gram route's own floor is ~1e-8
    # the residual is ||T||^2 minus the kept Ritz values: exact up to the cancellation, ~eps ||T||_F^2 in LSB^2
    floor = 100 * torch.finfo(torch.float64).eps * float(torch.linalg.matrix_norm(t).amax()) ** 2
    err = float(torch.linalg.matrix_norm(t - ab).amax())        # Frobenius error of the factors returned
    assert abs(f.residual_lsb ** 2 - err ** 2) <= floor
    assert abs(f.residual_lsb ** 2 - float(tails[k]) ** 2) <= floor


def test_factors_in_place_equal_the_stacked_ones_and_a_wrong_count_is_refused():
    t = _tables(1.0)
    f, g = factored.factor_tables(iter(t)), factored.factor_tables(iter(t), 2)
    assert f.rank == g.rank and torch.equal(f.a, g.a) and torch.equal(f.b, g.b)
    with pytest.raises(ValueError, match="n=3"):
        factored.factor_tables(iter(t), 3)


def test_a_code_whose_cells_carry_nothing_stays_exactly_zero():
    t = _tables(1.0).clone()
    t[:, :, 0, :] = 0.0                                       # code 0 with no leakage (an ideal chip)
    f = factored.factor_tables(iter(t))
    assert bool((f.a[:, :, 0, :] == 0).all()) and bool(((f.a @ f.b)[:, :, 0, :] == 0).all())


def test_leading_eigvecs_small_matrices_take_the_full_eigh():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 4, 7, generator=g, dtype=torch.float64)
    gram = x @ x.transpose(1, 2)
    vec, val = factored.leading_eigvecs(gram)
    ev = torch.linalg.eigvalsh(gram).flip(1)
    assert vec.shape == (5, 4, 4) and torch.allclose(val, ev, rtol=1e-12)
    assert torch.allclose(gram @ vec, vec * val[:, None, :], atol=1e-10)


@pytest.mark.parametrize("compression", [1.0, 0.5])
def test_cell_table_is_the_interpolation_times_the_gain(compression):
    chip = Chip(P, n_chips=1, seed=2, nonideal=Nonidealities(compression=compression), device="cpu")
    m, v, d = chip.model, chip.v_wl[0], chip.dvt[0]
    gain = (1 + chip.dbeta[0]) / chip.i_lsb
    ref = m.interp(v[:, :, None], d[:, None, :]) * gain[:, None, :]
    got = m.cell_table(v, d, gain)
    assert float(((got - ref).abs() / ref.abs().clamp(min=1e-300)).max()) < 1e-12
    out = torch.empty_like(got)
    assert m.cell_table(v, d, gain, out=out) is out and torch.equal(out, got)


def test_factors_on_threads_and_compiled_equal_one_thread_and_torch():
    """The chips factored on two threads (a table function) equal one thread and the tables one by one, bit for
    bit; the compiled row loop (numba) equals the batched torch route to its rounding (A B within 1e-8 LSB, the
    floor of the Gram route; the residuals to the floor of the subtraction they come from)."""
    t = _tables(1.0, n=3)

    def table(k, out):
        return t[k].clone() if out is None else out.copy_(t[k])

    one, two, it = factored.factor_tables(table, 3, 1), factored.factor_tables(table, 3, 2), \
        factored.factor_tables(iter(t))
    for f in (two, it):
        assert f.rank == one.rank and torch.equal(f.a, one.a) and torch.equal(f.b, one.b)
        assert f.residual_lsb == one.residual_lsb
    keep = min(factored.RANK_MAX, t.shape[2])
    a, b = torch.empty(t.shape[1], t.shape[2], keep, dtype=torch.float64), \
        torch.empty(t.shape[1], keep, t.shape[3], dtype=torch.float64)
    tail = factored._factor_torch(t[0], keep, a, b)
    k = one.rank
    assert float((a[..., :k] @ b[:, :k] - one.a[0] @ one.b[0]).abs().max()) < 1e-8   # the Gram route's floor
    # a residual is sqrt(||T||^2 - the leading eigenvalues' sum): both routes' eigenvalues carry ~eps ||T||^2 of
    # rounding (which BLAS kernel runs decides its digits), so their squared residuals agree to that floor (on one
    # AVX-512 machine they differ by 0.9 eps ||T||^2 at rank 6: 2e-7 in a residual of 1e-3), whatever their size
    total = float((t[0] ** 2).sum((1, 2)).max())                     # the worst row's ||T||_F^2
    got = factored._factor_one(t[0], a, b)
    assert float((tail ** 2 - got ** 2).abs().max()) <= 16 * torch.finfo(torch.float64).eps * total
    with pytest.raises(ValueError, match="n=None"):
        factored.factor_tables(table)


def test_static_draws_do_not_depend_on_the_threads():
    one = factored.draw_standard(5, 2, 5, 8, 6, 3, threads=1)
    two = factored.draw_standard(5, 2, 5, 8, 6, 3, threads=2)
    assert all(torch.equal(getattr(one, f), getattr(two, f)) for f in ("dvt", "dbeta", "dac", "offset", "replica",
                                                                        "offset_p"))
