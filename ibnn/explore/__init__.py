"""Room `explore` (notebook 09): the parameter space explored as a whole, on a cached, distributed sweep engine.

engine     run a point function (point dict, seed) -> dict of figures over many points: in-process, on a
           dask LocalCluster, or on an existing dask cluster; every point cached by a content hash
           (keys: content hashes and code versions; cache: the point files; engines: where points run)
space      ranged dimensions (cited low/high, log scale where a range spans a decade) shared by the two below
points     the adapter from a ParamSet figure function to a point function
sobol      Sobol first-order and total indices (SALib) with bootstrap intervals, evaluated through the engine
emulated   the same indices of a smooth figure from a quadratic surface fitted to the real points (SALib at a
           large N on the surface; its leave-one-out error stated)
jointfit   the point closest to the defaults (in units of each range) at which every target band holds
toys       tiny analytic point functions (Ishigami, a slow one, a failing one) for tests and examples

The paper-consistent fit of notebook 09:
paperpoint the point function: the JETCAS figures (drop on simulated chips, naive and corrected; energy, ratio,
           TOPS/W, TOPS/mm2) at a point's operating-point choices, and the silicon check in the prototype's own
           configuration, all through the cost room's energy study (uses `correct` for the per-chip correction)
surrogate  local linear / ln-linear models of a figure (central differences on common random numbers)
paperfit   the targets (the ledger's claims + the silicon check), screening, the model point, verification
paperstudy the coarse-to-fine fit, the joint-fit record, the Sobol summary and the short list of unknowns
claims_fit the claims ledger's second column, "paper-consistent fit" (rows from results/09_joint_fit.json)
plots      the Sobol figure

It sits above `cost` (its point functions evaluate chips, the mapped network and the energy model) and below
`repro` (the notebooks and the claims ledger read its results).
"""
