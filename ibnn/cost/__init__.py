"""Room `cost` (notebooks 06, 07): energy per cycle and per inference with its scopes (`energy`), what a run of
the mapped network gives it (`activity`), the digital baseline (`digital`), ops and TOPS (`ops`, `efficiency`),
area (`area`), the energy study driver (`study`), the silicon check and the JETCAS operating point (`silicon`), the
figures of 06 and 07 (`plots`), and the published in-memory-computing macros (`macros`)."""
