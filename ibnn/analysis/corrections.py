"""Array-side per-chip corrections: the bias-row rewrite (a knob the prototype chip has) and, for comparison only,
a comparator trim confined to the mapping's declared range (a knob it does not have).

The prototype compares BL with BLB directly; no per-column trim DAC is known on it (J. Zhang, Z. Wang, N. Verma,
IEEE JSSC 52(4):915-924, 2017). What it can change per chip are its SRAM cells and the digital logic after the
comparators (`ibnn.analysis.readout`), which the authors trained with the chip in the loop.

Bias-row rewrite (`calibrate_bias_rows`). The bias rows of a layer (`ibnn.mapping`: K coarse rows at full scale and
bits + 1 fine rows at codes 16, 8, 4, 2, 1, 1) are SRAM cells driven with fixed codes; their +-1 pattern per column
sets the column's bias sum B_j. Per chip and column, B_j moves over the sums those rows can reach
(`reachable_bias`: every sum of codes x (+-1), one canonical pattern per sum, the one the mapping writes), with the
search of `ibnn.analysis.calibration`. The cells keep their own mismatch: the chip model evaluates the pattern
written, so a sum is what those particular cells give. The comparator reference stays at the mapping's residual.
Columns whose best sum is at the end of the reachable range are counted (`n_at_edge`).

Comparator trim (`calibrate_trim`): the same search over comparator references |theta| <= theta_max, the
mapping's declared trim range (`ArrayMapping.theta_max`), in 1-LSB steps; a range beyond the declared one is
refused. It is a hypothetical added circuit (no range, resolution, area or energy of it is in the parameter
set, and the energy model does not charge it): report it only as a labelled comparison, never as the chip's result.
"""
from __future__ import annotations

import torch

from ..mapping.bias import fine_pattern
from ..validate import check_real
from .calibration import ChipCorrection, Knob, calibrate_layers

TRIM_LABEL = ("hypothetical comparator trim (a per-column trim DAC is not a circuit of the JSSC 2017 prototype, "
              "not in the parameter set and not charged in the energy model), clamped to the mapping's declared range")


def reachable_bias(L) -> tuple[torch.Tensor, torch.Tensor]:
    """Every bias sum the layer's bias rows can give, sorted, and one +-1 pattern per sum (the canonical one:
    fewest coarse rows at +1, then the fine rows' greedy pattern, as `ibnn.mapping` writes it).

    Returns (sums int64 (G,), patterns int8 (G, n_bias_rows), rows in the order of L.bias_rows)."""
    codes = L.bias_codes.to(torch.int64)
    K = int(L.n_coarse)
    fine = [int(c) for c in codes[:codes.numel() - K]]
    c_b = int(codes[-1]) if K else 0
    fs = sum(fine)
    best: dict = {}
    for m in range(K + 1):
        for p in range(fs + 1):
            best.setdefault(c_b * (2 * m - K) + 2 * p - fs, (m, p))
    sums = torch.tensor(sorted(best), dtype=torch.int64)
    m = torch.tensor([best[int(b)][0] for b in sums], dtype=torch.int64)
    p = torch.tensor([best[int(b)][1] for b in sums], dtype=torch.int64)
    parts = []
    if fine:
        parts.append(fine_pattern(p, fine).T)                                      # (G, F)
    if K:
        parts.append(torch.where(torch.arange(K)[None] < m[:, None], 1, -1).to(torch.int8))
    pats = torch.cat(parts, 1) if parts else torch.zeros(len(sums), 0, dtype=torch.int8)
    if not torch.equal((pats.to(torch.int64) * codes[None]).sum(1), sums):
        raise ValueError(f"layer {L.index}: bias patterns do not reproduce their sums")
    return sums, pats


def _bias_knob(mapping, chip, L, state) -> Knob:
    if L.bias_rows.numel() == 0:
        raise ValueError(f"layer {L.index} has no bias rows: there is nothing to rewrite (map with bias rows)")
    sums, pats = reachable_bias(L)
    start = torch.searchsorted(sums, L.bias_sum.to(torch.int64))
    stored = mapping.weights[L.bias_rows[:, None], L.cols[None, :]].T                # (fan_out, n_bias_rows)
    if not torch.equal(sums[start], L.bias_sum.to(torch.int64)) or not torch.equal(pats[start], stored):
        raise ValueError(f"layer {L.index}: the mapped bias pattern is not the canonical one for its sum")
    rows, cols = L.bias_rows, L.cols

    def apply(idx):
        state["weights"][:, rows[:, None], cols[None, :]] = pats[idx].permute(0, 2, 1)
        chip.program(state["weights"])
        return state["theta"]

    def describe(idx):
        shift = (sums[idx] - sums[start][None]).double()
        return {"bias_shift_rms_lsb": float(shift.pow(2).mean().sqrt()), "bias_shift_max_lsb": float(shift.abs().max()),
                "reachable_bias_lsb": [int(sums[0]), int(sums[-1])], "n_reachable_sums": int(len(sums))}

    return Knob(torch.zeros(L.fan_out, dtype=torch.int64), torch.full((L.fan_out,), len(sums) - 1), start, apply,
                describe)


def calibrate_bias_rows(mapping, chip, codes, split: str, fine: int = 3, noise_seed: int = 12345,
                        test_codes=None) -> ChipCorrection:
    """Per-chip bias-row patterns from the chip's decisions on calibration (training) images (module docstring).

    codes: (N, n_features) from the training split (`split` says so; "test" is refused). Returns a
    `ChipCorrection` with the rewritten weights (n_chips, rows, cols) and the mapping's references."""
    return calibrate_layers(mapping, chip, codes, split, lambda L, s: _bias_knob(mapping, chip, L, s),
                            "bias_row_rewrite", fine, noise_seed, test_codes)


def _trim_knob(L, state, theta_max: float) -> Knob:
    base = L.theta_ref.to(torch.float64)
    t_hi = torch.floor(theta_max - base + 1e-9)                                    # largest integer trim
    t_lo = torch.ceil(-theta_max - base - 1e-9)
    if bool((t_lo > t_hi).any()):
        raise ValueError(f"theta_max={theta_max} leaves no integer trim for some columns of layer {L.index}")
    top = float(t_hi.max())
    lo, hi = (top - t_hi).long(), (top - t_lo).long()                              # index 0: the largest trim
    start = torch.full_like(lo, int(top)).clamp(lo, hi)

    def apply(idx):
        state["theta"][:, L.cols] = base[None] + (top - idx.double())
        return state["theta"]

    def describe(idx):
        t = top - idx.double()
        return {"trim_rms_lsb": float(t.pow(2).mean().sqrt()), "trim_max_lsb": float(t.abs().max()),
                "theta_max_lsb": theta_max, "theta_abs_max_lsb": float((base[None] + t).abs().max())}

    return Knob(lo, hi, start, apply, describe)


def calibrate_trim(mapping, chip, codes, split: str, theta_max: float | None = None, fine: int = 3,
                   noise_seed: int = 12345, test_codes=None) -> ChipCorrection:
    """Per-chip comparator references theta = theta_mapped + t (t integer LSB) with |theta| <= theta_max.

    theta_max: the trim range (default and upper limit: the mapping's declared `theta_max`; a wider range is a
    ValueError). A hypothetical circuit (`TRIM_LABEL`): for comparison with the corrections the chip can make."""
    declared = float(mapping.theta_max)
    theta_max = declared if theta_max is None else check_real("theta_max", theta_max, 0.0, declared)
    corr = calibrate_layers(mapping, chip, codes, split, lambda L, s: _trim_knob(L, s, theta_max),
                            "comparator_trim", fine, noise_seed, test_codes)
    corr.info.update({"circuit": TRIM_LABEL, "declared_theta_max_lsb": declared})
    return corr
