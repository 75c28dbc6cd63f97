"""The fast paths of the chip and of running a mapped network compute what the plain formulations do:
table look-up line sums == the factored product, one-exponential discharge == column.discharge, the compiled loop
== the torch operations, a streamed run == the run on all chips at once, and the CUDA path ==
the CPU path (skipped where no CUDA device exists)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_folded, random_codes

from ibnn import params
from ibnn.circuit import factored, fused, kernel
from ibnn.circuit.chip import Chip
from ibnn.circuit.column import discharge
from ibnn.circuit.nonideal import Nonidealities
from ibnn.mapping import map_network
from ibnn.mapping.execute import run, run_streamed

P = params.load()


def _weights(seed, shape=(128, 128)):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 2, shape, generator=g) * 2 - 1).to(torch.int8)


def _codes(seed, b, rows=128):
    g = torch.Generator().manual_seed(seed)
    c = torch.randint(0, 32, (b, rows), generator=g)
    c[:, 101:] = 0            # rows off for every input: added as leakage (101 on: the loop's four-row groups and one)
    return c


@pytest.fixture(scope="module")
def chip():
    return Chip(P, n_chips=2, seed=3, device="cpu").program(_weights(1))


def test_table_sums_equal_the_factored_product_within_the_rounding_bound(chip):
    x = _codes(2, 100)
    m = chip._m.view(2, chip.rows, chip.rank, 2 * chip.cols)
    tab = factored.code_tables(chip._u, m)
    cpl = chip.coupling.to(torch.float32)
    got, kick = (t.double() for t in factored.table_sums(tab, cpl, x, shared=True))
    u, mm, a = chip._u.double(), m.double(), cpl.double()                          # float64 references
    ref = torch.stack([sum(u[g, i, x[:, i]] @ mm[g, i] for i in range(chip.rows)) for g in range(2)])
    ref_k = torch.stack([sum(a[x[:, i], None] * (u[g, i, x[:, i]] @ mm[g, i]) for i in range(chip.rows))
                         for g in range(2)])
    assert ref.shape == got.shape == kick.shape
    bound = factored.rounding_bound_lsb(tab) + 1e-5 * float(ref.abs().max())      # + float32 tables (2**-24)
    err, noise_lsb = float((got - ref).abs().max()), chip.noise_sigma / chip.volts_per_lsb
    assert err <= bound
    assert float((kick - ref_k).abs().max()) <= float(a.abs().max()) * bound       # the kick: weights |a| <= max
    assert bound < 0.25 * noise_lsb and err < 0.002 * noise_lsb                   # below the noise floor
    per_chip, none = factored.table_sums(tab, None, x.expand(2, -1, -1), shared=False)
    assert none is None and torch.equal(per_chip, factored.table_sums(tab, None, x, shared=True)[0])
    off, off_k = factored.table_sums(tab, cpl, torch.zeros_like(x), shared=True)   # every row off: leakage
    assert torch.equal(off, tab[:, :, 0, :].sum(1)[:, None, :].expand_as(off))
    assert torch.equal(off_k, (tab[:, :, 0, :] * cpl[0]).sum(1)[:, None, :].expand_as(off_k))


def test_lookup_count_rests_on_one_line_per_cell(chip):
    """The benchmarks' floor counts 2 x 2 cols operations per driven cell (kernel.lookup_operations): a window add
    and a kick multiply-add on both lines of the cell's column. Its premise holds for the chip's tables: a cell's
    entry on the line its weight does not pull is exactly 0 at every code, and the pulled line's is not (a row at
    code 0 is one table entry per line whatever the input, so it is not counted). The count is checked against a
    cell-by-cell count."""
    tab = factored.code_tables(chip._u, chip._m.view(2, chip.rows, chip.rank, 2 * chip.cols))   # (G, rows, codes, 2C)
    pulls_blb = (chip.weights == 1)[:, :, None, :].expand(-1, -1, tab.shape[2], -1)
    blb, bl = tab[..., :chip.cols], tab[..., chip.cols:]
    assert torch.equal(torch.where(pulls_blb, bl, blb), torch.zeros_like(blb))     # the line not pulled: 0
    assert bool((torch.where(pulls_blb, blb, bl)[:, :, 1:] != 0).all())             # the pulled one: current
    x = _codes(4, 50)
    x[1, 8], x[2, 20:40] = 0, 0
    driven = sum(1 for b in range(x.shape[0]) for i in range(x.shape[1]) if int(x[b, i]) != 0)
    assert kernel.lookup_operations(x, chip.cols, kick=True) == driven * 2 * chip.cols * 2
    assert kernel.lookup_operations(x, chip.cols, kick=False) == driven * 2 * chip.cols
    assert kernel.lookup_operations(x[None].expand(3, -1, -1), chip.cols, kick=True) == 3 * driven * 4 * chip.cols


@pytest.mark.parametrize("s", [1.0, 0.5])
def test_one_exponential_discharge_is_column_discharge_bit_for_bit(chip, s):
    law = chip.drain_law.scaled(s)
    swing = torch.linspace(0.0, 3.0, 20001, dtype=torch.float32)
    assert torch.equal(fused.line_voltages(law, swing), discharge(swing, law))


def test_streamed_run_equals_the_run_on_all_chips():
    m = map_network(make_folded(), P)
    x = random_codes(300, seed=4)
    whole = run(m, Chip(P, n_chips=2, seed=5), x, noise_seed=6, batch=128).labels
    streamed = run_streamed(m, P, x, 2, seed=5, chips_per_group=1, batch=128, noise_seed=6).labels
    assert torch.equal(whole, streamed)
    with pytest.raises(ValueError, match="chips_per_group"):
        run_streamed(m, P, x, 3, chips_per_group=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_path_gives_the_cpu_decisions():
    w, x = _weights(7), _codes(8, 3000)
    cpu = Chip(P, n_chips=2, seed=9, device="cpu").program(w).evaluate(x, noise_seed=10, dv=True)
    gpu = Chip(P, n_chips=2, seed=9, device="cuda").program(w).evaluate(x, noise_seed=10, dv=True)
    dv = gpu.dv.cpu()
    assert float((dv - cpu.dv).abs().max()) < 1e-3 * P["comp_noise_sigma"] + 1e-6
    differ = gpu.decisions.cpu() != cpu.decisions
    assert int(differ.sum()) <= max(1, differ.numel() // 100_000)          # only decisions at a rounding tie
    m = map_network(make_folded(), P)
    xs = random_codes(500, seed=11)
    lc = run(m, Chip(P, n_chips=2, seed=12, device="cpu"), xs, noise_seed=13).labels
    lg = run(m, Chip(P, n_chips=2, seed=12, device="cuda"), xs, noise_seed=13).labels
    assert float((lc != lg).double().mean()) <= 1e-3


def _torch_and_kernel(chip, x, monkeypatch, **kw):
    """One evaluation on the torch path and one through the compiled loop (ibnn.circuit.kernel)."""
    out = []
    for switch in ("0", "1"):
        monkeypatch.setenv("IBNN_KERNEL", switch)
        out.append(chip.evaluate(x, noise_seed=4, dv=True, drops=True, **kw))
    return out


def _same_to_rounding(a, b, chip=None):
    """The same decisions except where dv lies within float32 rounding of the reference; dv and drops to a few
    ulp of the 1-V scale (far below the 1-mV comparator noise). On the linear (ideal) bit-line, whose swings are not
    bounded by the supply (a drop, clipped, is the difference of its window and kick swings), dv and drops to 4 ulp
    of the largest swing the chip's tables allow (every row's largest entry)."""
    tol = 1e-6
    if chip is not None and chip.drain_law.ideal:
        tab = factored.code_tables(chip._u, chip._m.view(chip.n_chips, chip.rows, chip.rank, 2 * chip.cols))
        swing = float(tab.abs().amax(dim=(2, 3)).sum(1).max()) * chip.volts_per_lsb
        tol = max(tol, 4 * float(np.spacing(np.float32(swing))))
    assert float((a.dv - b.dv).abs().max()) <= tol
    assert float((a.drops - b.drops).abs().max()) <= tol
    differ = a.decisions != b.decisions
    assert int(differ.sum()) <= max(1, differ.numel() // 100_000)


@pytest.mark.parametrize("mechanisms", ["all", "no kick", "no noise", "linear lines"])
def test_compiled_loop_computes_the_torch_path(mechanisms, monkeypatch):
    """The chip's cycle as one compiled loop (numba) and as torch operations: the same decisions, dv and drops to
    float32 rounding, with every mechanism on, without the word-line kick, without temporal noise, and on the
    linear (ideal) bit-line."""
    pytest.importorskip("numba")
    ni = {"all": Nonidealities(), "no kick": Nonidealities(wl_coupling=0.0), "no noise":
          Nonidealities(noise=0.0, physical_noise=0.0), "linear lines": Nonidealities(compression=0.0)}[mechanisms]
    chip = Chip(P, n_chips=3, seed=3, nonideal=ni, device="cpu").program(_weights(1))
    assert kernel.available("cpu", None) and (mechanisms != "linear lines" or chip.drain_law.ideal)
    x = _codes(5, 2500)                                         # two chunks; rows 101.. off: their leakage
    _same_to_rounding(*_torch_and_kernel(chip, x, monkeypatch), chip)


def test_compiled_loop_with_codes_per_chip_and_a_column_subset(chip, monkeypatch):
    """Codes per chip (n_chips, B, rows) and a column subset take the compiled loop's other indexing."""
    pytest.importorskip("numba")
    x = torch.stack([_codes(6, 700), _codes(7, 700)])
    x[1, :5] = 0                                                # inputs with every row off
    _same_to_rounding(*_torch_and_kernel(chip, x, monkeypatch))
    cols = torch.tensor([0, 5, 127])
    a, b = _torch_and_kernel(chip, x, monkeypatch, cols=cols)
    _same_to_rounding(a, b)
    monkeypatch.setenv("IBNN_KERNEL", "1")
    full = chip.evaluate(x, noise_seed=4, dv=True)
    assert torch.equal(b.decisions, full.decisions[..., cols]) and torch.equal(b.dv, full.dv[..., cols])


def test_codes_that_drive_no_cell_look_up_no_row(chip, monkeypatch):
    """bench_chip times the rest of (a)'s cycle as the evaluation on codes that drive no cell: no row is active, so
    neither path looks a row up (the torch path's sums are one per chip, broadcast over the inputs), and the
    compiled loop gives the torch path's decisions, dv and drops (the leakage alone)."""
    pytest.importorskip("numba")
    x = torch.zeros(300, chip.rows, dtype=torch.int64)
    assert len(factored.active_rows(x, chip.rows)) == 0 and kernel.lookup_operations(x, chip.cols, True) == 0
    idle, kicked = factored.table_sums(factored.code_tables(
        chip._u, chip._m.view(2, chip.rows, chip.rank, 2 * chip.cols)), chip.coupling.to(torch.float32), x, True)
    assert idle.stride(1) == 0 and kicked.stride(1) == 0              # one sum per chip, broadcast over the inputs
    _same_to_rounding(*_torch_and_kernel(chip, x, monkeypatch))


def test_kernel_switch_is_checked(monkeypatch):
    monkeypatch.setenv("IBNN_KERNEL", "yes")
    with pytest.raises(ValueError, match="IBNN_KERNEL='yes'"):
        kernel.available("cpu", None)
    monkeypatch.setenv("IBNN_KERNEL", "1")
    assert not kernel.available("cuda", None)                           # CUDA runs the torch path
    assert not kernel.available("cpu", Chip(P, n_chips=1).drain_law)   # a law given: one the loop does not write out


def test_tables_follow_the_weights_and_the_timing():
    """The look-up tables follow what program() and retimed() replace (they are built per evaluation from the
    chip's factors and weights): a reprogrammed or retimed chip evaluates as a fresh one."""
    x = _codes(6, 200)
    chip = Chip(P, n_chips=2, seed=3, device="cpu").program(_weights(1))
    chip.evaluate(x, noise_seed=2)                                  # evaluated with weights 1 first
    fresh = Chip(P, n_chips=2, seed=3, device="cpu").program(_weights(2))
    got = chip.program(_weights(2)).evaluate(x, noise_seed=2, dv=True)
    want = fresh.evaluate(x, noise_seed=2, dv=True)
    assert torch.equal(got.decisions, want.decisions) and torch.equal(got.dv, want.dv)
    P2 = P.replace(t_eval=2 * P["t_eval"])
    got = chip.retimed(P2).evaluate(x, noise_seed=2, dv=True)
    want = fresh.retimed(P2).evaluate(x, noise_seed=2, dv=True)
    assert torch.equal(got.decisions, want.decisions) and torch.equal(got.dv, want.dv)
    assert not torch.equal(got.dv, chip.evaluate(x, noise_seed=2, dv=True).dv)   # the retiming acted


def test_the_loops_exp_is_within_two_ulp_of_exp():
    """kernel.expf (Cephes' polynomial, written out so that it vectorises) against the float64 exp, within 2 ulp:
    on 20,000 uniform points of [-87, 88], 2,000 log-spaced magnitudes on each side of 0 and the ends; below -87
    (e^x < 2e-38) it returns e^-87. Called point by point (the compiled scalar function, cached by numba)."""
    pytest.importorskip("numba")
    g = np.random.default_rng(0)
    tiny = np.logspace(-30, np.log10(87.0), 2000)
    x = np.concatenate([g.uniform(-87.0, 88.0, 20_000), tiny, -tiny, [-87.0, 0.0, 88.0]]).astype(np.float32)
    got = np.array([kernel.expf(v) for v in x], dtype=np.float64)
    ref = np.exp(x.astype(np.float64))
    ulp = np.spacing(ref.astype(np.float32)).astype(np.float64)
    assert float(np.max(np.abs(got - ref) / ulp)) <= 2.0
    assert kernel.expf(np.float32(-100.0)) == kernel.expf(np.float32(-1e30)) == np.float32(np.exp(np.float32(-87.0)))


def test_a_group_of_chips_decides_alike_on_one_and_two_threads():
    """The noise streams of a group's chips are drawn on the evaluation's threads, and the chips drawn (static draws,
    word-line solve, factors) on the construction's: one thread or two give the same chips and decisions."""
    x = _codes(12, 600)
    old = torch.get_num_threads()
    out = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            chip = Chip(P, n_chips=3, seed=13, device="cpu").program(_weights(14))
            out.append((chip, chip.evaluate(x, noise_seed=15, dv=True)))
    finally:
        torch.set_num_threads(old)
    (c1, a), (c2, b) = out
    assert torch.equal(c1._a, c2._a) and torch.equal(c1.v_wl, c2.v_wl)
    assert torch.equal(a.decisions, b.decisions) and torch.equal(a.dv, b.dv)


@pytest.mark.parametrize("path", ["1", "0"])
def test_grouping_of_chips_changes_no_result(path, monkeypatch):
    """Chips are evaluated in groups sized by GROUP_BYTES (`physical._bytes_per_chip`); one chip per group and all
    chips in one give the same decisions, dv and drops, bit for bit, on the compiled loop and on the torch path
    (each chip's noise stream is its own, drawn chunk by chunk)."""
    from ibnn.circuit import physical
    monkeypatch.setenv("IBNN_KERNEL", path)
    chip = Chip(P, n_chips=4, seed=21, device="cpu").program(_weights(22))
    x = _codes(23, physical.CHUNK + 300)                                            # two chunks
    per_chip = physical._bytes_per_chip(chip, kernel.available("cpu", None) and path == "1", True)
    out = []
    for budget in (per_chip, 4 * per_chip):                                         # 1 chip per group, then 4
        monkeypatch.setattr(physical, "GROUP_BYTES", budget)
        out.append(chip.evaluate(x, noise_seed=24, dv=True, drops=True))
    a, b = out
    assert torch.equal(a.decisions, b.decisions) and torch.equal(a.dv, b.dv) and torch.equal(a.drops, b.drops)


def test_precompile_loads_every_loop_and_refuses_an_unknown_part(capsys):
    from ibnn.circuit import precompile
    assert precompile.main(["all"]) == 0 and "compiled or loaded" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="part='bogus' is not accepted"):
        precompile.main(["bogus"])
