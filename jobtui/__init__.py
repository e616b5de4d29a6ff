"""jobtui: watch and steer long-running libvirt jobs."""
__version__ = "0.1.0"
