"""charter: a toolkit for Constitutional AI and the alignment research around it.

The package import is deliberately light (no torch, no transformers): heavy libraries are
imported inside the backend or stage that needs them, so `charter --help` stays instant.
"""

__version__ = "0.1.0"
