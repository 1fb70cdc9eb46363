"""Serving plans: cost model, pipelines, KV-cache pools, roles and the estimate."""
