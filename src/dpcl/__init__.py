"""dpcl: Deep Clustering speech separation, reproducible from raw audio to report."""

__version__ = "0.1.0"
