"""Room `repro` (notebook 10 and `make figures`): the floor utilities every room stands on (`io`: paths and
atomic writes; `device`: CPU/CUDA and threads; `progress`: quiet progress bars) and, on top, what makes the
companion reproducible: `provenance` (the inputs of every result), `pipeline` (`make figures`), `claims` (the
ledger), `nb` (notebook set-up) and `style` (figures)."""
