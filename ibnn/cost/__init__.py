"""Room `cost` (notebooks 06, 07): energy per cycle and per inference with its scopes, the digital baseline,
ops and TOPS, area, the energy study driver, and the published in-memory-computing macros."""
