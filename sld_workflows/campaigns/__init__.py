"""Data-generation campaigns: pool, SLD and randomised-spin reference arms, test trajectories (docs/campaigns.md)."""
