"""Discovery: structure identification from data, with no motif behind it.

``terms`` (the candidate-term library), ``regression`` (sparse regression along a threshold
path with bootstrap stability), ``derivatives`` (targets from noisy series), ``identify``
(per-state selection combined into whole systems), ``render`` (an identified system as a
library ModelSpec) and ``proposer`` (the :class:`DiscoveryProposer`). Import the modules
themselves; this package imports nothing at import time.
"""
