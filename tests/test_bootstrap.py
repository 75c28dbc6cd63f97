"""ibnn.analysis_stats: the two-level bootstrap covers a known mean at its nominal rate (and an interval over chips
alone does not), paired comparisons are narrower than unpaired ones for correlated methods, variance components
predict the interval, power-law inverse points and the crossing rule, choices on validation data."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ibnn.analysis import bootstrap as S
from ibnn.analysis import inverse


def crossed_gaussian(nc, ni, sa, sb, se, mu, seed):
    """x_ij = mu + a_i + b_j + e_ij as a 'correctness' matrix is 0/1 only; so return the real matrix and feed it
    through `replicates` (which takes any real matrix)."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(nc, 1, generator=g) * sa
    b = torch.randn(1, ni, generator=g) * sb
    e = torch.randn(nc, ni, generator=g) * se
    return mu + a + b + e


def test_two_level_bootstrap_covers_a_known_mean_at_the_nominal_rate():
    """Crossed random effects (chip, image and residual variance all present): the two-level percentile
    interval covers mu in about 95% of experiments (the pigeonhole bootstrap is mildly conservative), while an
    interval over chips alone (images fixed) misses far more often."""
    mu, hits, hits_chips, n = 0.3, 0, 0, 300
    for r in range(n):
        x = crossed_gaussian(12, 150, 0.02, 0.2, 0.2, mu, seed=r)
        rep = -S.replicates([x], None, n_boot=400, seed=r)[0]
        lo, hi = np.quantile(rep.numpy(), [0.025, 0.975])
        hits += lo <= mu <= hi
        rep_c = -S.replicates([x], None, n_boot=400, seed=r, over="chips")[0]
        lo, hi = np.quantile(rep_c.numpy(), [0.025, 0.975])
        hits_chips += lo <= mu <= hi
    assert 0.90 <= hits / n <= 0.995
    assert hits_chips / n < 0.75


def test_bernoulli_correctness_matrix_coverage():
    """0/1 correctness with image difficulty and chip quality: the drop interval covers the population drop."""
    hits, n = 0, 200
    for r in range(n):
        g = np.random.default_rng(r)
        q = g.uniform(0.5, 0.9, 400)                  # image: probability a chip is right
        a = g.uniform(-0.05, 0.05, 10)                # chip quality
        C = g.random((10, 400)) < (q[None] + a[:, None])
        s = g.random(400) < 0.8                       # software right with probability 0.8
        d = S.drop_ci(C, s, n_boot=400, seed=r)
        hits += d.ci95[0] <= 0.8 - 0.7 <= d.ci95[1]   # E[s] - E[C] = 0.8 - 0.7
    assert 0.90 <= hits / n <= 0.995


def test_paired_difference_is_narrower_than_unpaired_for_correlated_methods():
    g = np.random.default_rng(0)
    q = g.uniform(0.6, 1.0, 2000)
    A = g.random((20, 2000)) < q[None]
    B = A.copy()
    flip = g.random(B.shape) < 0.01                   # method b: a few decisions differ
    B[flip] = ~B[flip]
    s = g.random(2000) < 0.9
    p = S.paired_difference(A, s, B, s, n_boot=500)
    u = S.paired_difference(A, s, B, s, n_boot=500, paired=False)
    assert p.difference == pytest.approx(u.difference)
    assert (p.ci95[1] - p.ci95[0]) < 0.3 * (u.ci95[1] - u.ci95[0])
    assert p.ci_method == S.CI_METHOD


def test_same_seed_and_shape_give_the_same_resamples():
    g = np.random.default_rng(1)
    A = g.random((5, 300)) < 0.9
    s = g.random(300) < 0.95
    r1 = S.replicates([A], [s], n_boot=250, seed=3)
    r2 = S.replicates([A, A], [s, s], n_boot=400, seed=3)
    assert torch.equal(r1[0], r2[0, :250]) and torch.equal(r2[0], r2[1])
    assert not torch.equal(r1[0], S.replicates([A], [s], n_boot=250, seed=4)[0])
    # a difference of two bootstraps with one seed equals the bootstrap of the difference (paired by construction)
    B = g.random((5, 300)) < 0.8
    d = S.replicates([A], [s], 300, 7)[0] - S.replicates([B], [s], 300, 7)[0]
    dd = S.replicates([torch.as_tensor(A, dtype=torch.float32) - torch.as_tensor(B, dtype=torch.float32)],
                      [torch.zeros(300)], 300, 7)[0]
    assert torch.allclose(d, dd, atol=1e-12)


def test_drop_and_accuracy_point_values():
    C = torch.tensor([[1, 1, 0, 1], [1, 0, 0, 1]], dtype=torch.bool)
    s = torch.tensor([1, 1, 0, 1], dtype=torch.bool)
    d = S.drop_ci(C, s, n_boot=100)
    assert d.mean_drop == pytest.approx(0.75 - 0.625)
    assert d.ci_method == "two-level bootstrap (chips x images)"
    a = S.accuracy_ci(C, s, n_boot=100)
    assert a.accuracy == pytest.approx(0.625) and a.software_accuracy == pytest.approx(0.75)
    assert a.drop.mean_drop == pytest.approx(d.mean_drop)
    assert a.ci95[0] <= a.accuracy <= a.ci95[1]


@pytest.mark.parametrize("bad", [dict(correct=torch.zeros(3)), dict(correct=torch.full((2, 3), 2)),
                                 dict(software_correct=torch.ones(4)), dict(n_boot=1), dict(level=1.0)])
def test_bad_input_is_a_value_error_naming_the_parameter(bad):
    kw = dict(correct=torch.ones(2, 3), software_correct=torch.ones(3), n_boot=100, level=0.95)
    kw.update(bad)
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name):
        S.drop_ci(**kw)


def test_variance_components_recover_the_model_and_predict_the_interval():
    g = np.random.default_rng(2)
    q = g.uniform(0.5, 1.0, 3000)
    C = g.random((30, 3000)) < q[None]
    s = g.random(3000) < 0.95
    vc = S.variance_components(C, s)
    assert vc.image > vc.chip >= 0 and vc.residual > 0
    se_boot = S.drop_ci(C, s, n_boot=1000).se
    assert vc.se(30, 3000) == pytest.approx(se_boot, rel=0.15)
    assert vc.halfwidth(120, 3000) < vc.halfwidth(30, 3000)


def test_resolution_states_what_the_experiment_tells_apart():
    g = np.random.default_rng(3)
    C = g.random((10, 1000)) < 0.9
    s = g.random(1000) < 0.95
    r = S.resolution(S.drop_ci(C, s, n_boot=500))
    assert r.halfwidth > 0 and r.mdd80 > r.halfwidth
    assert "tells drops apart by" in r.text
    with pytest.raises(ValueError, match="ci"):
        S.resolution(0.1)


def test_read_crossing_refuses_what_the_data_do_not_resolve():
    x = [1, 2, 3]
    ok = inverse.read_crossing(x, [0.000, 0.002, 0.008], [0.002, 0.004, 0.012], 0.005)
    assert ok.resolved and ok.bracket == [2.0, 3.0]
    ok = inverse.read_crossing(x, [0.000, 0.006, 0.008], [0.002, 0.009, 0.012], 0.005)
    assert ok.resolved and ok.bracket == [1.0, 2.0]
    span = inverse.read_crossing(x, [-0.001, -0.003, 0.001], [0.005, 0.002, 0.010], 0.004)
    assert not span.resolved and "span" in span.reason
    nonmono = inverse.read_crossing(x, [0.006, 0.000, 0.007], [0.009, 0.002, 0.010], 0.004)
    assert not nonmono.resolved and "non-monotone" in nonmono.reason
    with pytest.raises(ValueError, match="increasing"):
        inverse.read_crossing([2, 1, 3], [0, 0, 0], [1, 1, 1], 0.5)


def test_power_law_fit_recovers_a_known_exponent_and_its_inverse_point():
    """Drops a x^2 (same chips and images at every point, as a scaled-mismatch sweep): the fit recovers b ~ 2
    and the x where the drop is 0.01, with an interval that contains the truth."""
    g = np.random.default_rng(4)
    xs = [1.0, 1.5, 2.0, 3.0]
    a, b = 0.004, 2.0
    u = g.random((20, 4000))
    s = np.ones(4000, dtype=bool)
    mats = [u >= a * x ** b for x in xs]     # the same uniforms at every point: nested errors, like one chip seed
    fit = inverse.fit_power_law(xs, mats, [s] * 4, target=0.01, n_boot=500)
    truth = (0.01 / a) ** (1 / b)
    assert fit.b == pytest.approx(2.0, abs=0.2)
    assert fit.crossing.resolved and fit.quotable
    assert fit.x_ci95[0] <= truth <= fit.x_ci95[1]
    assert fit.x_at_target == pytest.approx(truth, rel=0.1)
    far = inverse.fit_power_law(xs, mats, [s] * 4, target=0.5, n_boot=200)     # far beyond the swept drops
    assert far.extrapolated and not far.quotable and not far.crossing.resolved
    few = inverse.fit_power_law(xs, [m[:2, :200] for m in mats], [s[:200]] * 4, target=0.01, n_boot=500)
    assert not few.quotable        # 2 chips x 200 images: the interval of the inverse point leaves the range
    base = g.random(u.shape) >= 0.02                   # an independent floor every point shares: fit the excess
    over = inverse.fit_power_law(xs, [m & base for m in mats], [s] * 4, target=0.01 * 0.98, n_boot=500, base=base)
    assert over.b == pytest.approx(2.0, abs=0.3) and over.x_at_target == pytest.approx(truth, rel=0.15)


def test_choose_on_validation_takes_the_cheapest_option_not_resolvably_worse():
    g = np.random.default_rng(6)
    q = g.uniform(0.7, 1.0, 3000)
    s = g.random(3000) < 0.95
    mats = [g.random((8, 3000)) < q[None] - 0.05, g.random((8, 3000)) < q[None] - 0.001,
            g.random((8, 3000)) < q[None]]                                   # worse, about the best, the best
    ch = inverse.choose_on_validation([100, 300, 1000], [100, 300, 1000], mats, [s] * 3, n_boot=500)
    assert ch.chosen == 300 and ch.best in (300, 1000)
    assert ch.options[0]["vs_best"]["resolved"]
    assert ch.resolution.halfwidth > 0


def test_shared_resamples_give_what_the_separate_calls_give():
    """`Resamples` draws each method's replicates once; its drops and paired differences equal drop_ci and
    paired_difference with the same seed, including on the common first chips and images of two designs."""
    from ibnn.analysis import evaluation
    g = torch.Generator().manual_seed(3)
    A, B_ = torch.rand(6, 400, generator=g) < 0.9, torch.rand(6, 400, generator=g) < 0.85
    s = torch.rand(400, generator=g) < 0.93
    rs = evaluation.Resamples(500, seed=2)
    d = rs.drop(A, s)
    ref = S.drop_ci(A, s, 500, seed=2)
    assert d.ci95 == ref.ci95 and d.mean_drop == pytest.approx(ref.mean_drop) and d.ci_method == S.CI_METHOD
    diff, ref = rs.difference(A, s, B_, s), S.paired_difference(A, s, B_, s, n_boot=500, seed=2)
    assert diff.ci95 == pytest.approx(ref.ci95, abs=1e-12) and diff.difference == pytest.approx(ref.difference)
    small = rs.difference(A[:3, :200], s[:200], B_, s)                 # fewer chips and images: the common part
    ref = S.paired_difference(A[:3, :200], s[:200], B_[:3, :200], s[:200], n_boot=500, seed=2)
    assert small.n_chips == 3 and small.n_images == 200 and small.ci95 == pytest.approx(ref.ci95, abs=1e-12)


def test_design_takes_the_fewest_chips_within_the_tolerance_of_the_image_floor():
    from ibnn.analysis import evaluation
    vc = S.VarianceComponents(chip=1e-5, image=0.02, residual=0.03, n_chips=4, n_images=1000)
    d = evaluation.choose_design({"m": vc}, 10000, [5, 10, 20, 50], tolerance=0.1)
    rel = {row["n_chips"]: row["above_floor"]["m"] for row in d.predicted}
    assert d.n_chips == min(n for n, r in rel.items() if r <= 0.1)
    assert all(rel[n] > 0.1 for n in rel if n < d.n_chips)
    assert d.floor["m"] == pytest.approx(S.Z95 * (0.02 / 10000) ** 0.5)
    none = evaluation.choose_design({"m": vc}, 10000, [1, 2], tolerance=0.01)
    assert none.n_chips == 2                                             # none is good enough: the largest
