"""The job engine: the only layer (with the lab) that imports libvirt."""
