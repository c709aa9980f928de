"""Multi-region services: rollbacks wave by wave, per-region assessment, progress and review."""
