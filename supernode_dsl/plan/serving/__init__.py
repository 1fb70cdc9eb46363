"""Serving plans: cost model, pipelines, KV-cache pools, roles and the estimate.

Part of the plan stage (:func:`supernode_dsl.plan.plan_deployment` calls it).  Per role,
:func:`~supernode_dsl.plan.serving.plan.serve_role` returns the served batch, KV capacity,
pipeline and estimate (a :class:`~supernode_dsl.plan.serving.plan.RoleServing`); for the
deployment, :func:`~supernode_dsl.plan.serving.roles.serving_block` returns the plan's
``serving`` block.  docs/cost-model.md describes the model, module by module.
"""
