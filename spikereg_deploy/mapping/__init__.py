"""Stage 3 of the pipeline as core library code: map a network onto Loihi-style cores and chips.

`profiles` (core and chip limits and energies from TOML), `tiling` (layers cut into core-sized blocks), `traffic`
(spike rates and the block graph), `placement` (chips and cores), `routing` (hop metrics), `plan` (one mapping run:
`plan_mapping`, `write_outputs`), `report` (mapping.json and Markdown) and `render` (the core map PNG).
"""
