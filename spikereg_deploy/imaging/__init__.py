"""Imaging: NIfTI I/O, preprocessing onto the network grid, templates, registration pairs and their sources, warping.

Modules are imported by name (`spikereg_deploy.imaging.pairs`, `.sources`, ...): nothing is re-exported here, so
importing one module does not load nilearn or scipy for the others.
"""
