"""Energy accounting as core library code, from the counts a simulation measured.

`table` (per-layer rows and the 45 nm proxy), `ratios` (ANN/SNN ratio variants and the paper check), `loihi` (the
one Loihi per-operation model, shared with the mapping report) and `report` (build, render and write the energy
report). Energy imports no mapping module: a mapping reaches it as the mapping.json document.
"""
