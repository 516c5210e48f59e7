"""The fault campaign: randomized crashes, overlaps and writes against the protocol.

``tools/campaign`` is the entry point; ``docs/RELIABILITY.md`` explains the
scenarios, the oracle and the latest figures.
"""
