"""Stage 3 of the pipeline as core library code: map a network onto Loihi-style cores and chips.

`profiles` (core and chip limits, axon model, synapse encoding and energies from TOML), `grid` (axis parts),
`synapse_memory` (synapse lists as the hardware stores them), `tiling` (layers cut into core-sized blocks),
`traffic` (spike rates and the block graph), `partition` (chip partitioners, chosen by placed spike-hops),
`placement` (chips and cores), `routing` (hop metrics), `plan` (one mapping run: `plan_mapping`, `write_outputs`),
`report` (mapping.json and Markdown) and `render` (the core map PNG).
"""
