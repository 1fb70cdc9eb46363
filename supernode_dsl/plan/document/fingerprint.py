"""What a plan was made for, and the check that it is used with that and nothing else.

A 1.2 plan records two sha256 digests (hex):

* ``topology``: the compiled graph (after ``-D``).  Hashed, one line each, sorted: the graph
  attributes (``{"graph": ...}``), every node (``[path, attributes]``) and every edge
  (``[endpoint, endpoint, attributes]``, endpoints sorted unless the graph is directed), as
  JSON with sorted keys (values JSON cannot hold written with ``repr``).  The lines are
  sorted, so the digest does not depend on insertion order or the hash seed.
* ``deployment``: the deployment declaration the plan was made for and the ``model`` it
  names: for each, ``[category, name, [[attribute, repr(value)], ...]]`` with the
  attributes sorted, so the values after ``-D`` count and source positions do not (nor
  does the workload read from the deployment: it is part of the declaration).

:func:`check_plan_for` compares a plan with a compiled file.  A plan without a fingerprint
(schema 1.0 or 1.1) can only be checked by its topology name, its deployment's name and its
device paths.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

import networkx as nx

from supernode_dsl.diagnostics import CmxError
from supernode_dsl.elaborate import Model, Spec
from supernode_dsl.plan.document import Fingerprint, PlanDocument, PlanOrigin, plan_error

__all__ = ["check_plan_for", "deployment_fingerprint", "plan_fingerprint",
           "topology_fingerprint"]

_SHORT = 12  # hex digits of a digest shown in a message


# one encoder for every line (json.dumps with options builds a new one per call)
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=repr)


def _line(value: Any) -> str:
    return _ENCODER.encode(value)


def _digest(lines: Iterable[str]) -> str:
    h = hashlib.sha256()
    for line in sorted(lines):
        h.update(line.encode())
        h.update(b"\n")
    return h.hexdigest()


def topology_fingerprint(g: nx.Graph) -> str:
    """sha256 of the compiled graph: its attributes, nodes and edges (see the module)."""
    directed = g.is_directed()

    def ends(u: str, v: str) -> list[str]:
        return [u, v] if directed else sorted((u, v))

    lines = [_line({"graph": dict(g.graph)})]
    lines += [_line([n, data]) for n, data in g.nodes(data=True)]
    lines += [_line([*ends(u, v), data]) for u, v, data in g.edges(data=True)]
    return _digest(lines)


def _spec_line(spec: Spec) -> str:
    return _line([spec.category, spec.name, sorted((k, repr(v)) for k, v in spec.attrs)])


def deployment_fingerprint(model: Model, deployment: str) -> str | None:
    """sha256 of deployment ``deployment`` of ``model`` and the model spec it names; None
    when the file declares no such deployment."""
    specs = {(s.category, s.name): s for s in model.specs}
    spec = specs.get(("deployment", deployment))
    if spec is None:
        return None
    lines = [_spec_line(spec)]
    named = spec.get("model")
    if isinstance(named, str) and ("model", named) in specs:
        lines.append(_spec_line(specs[("model", named)]))
    return _digest(lines)


def plan_fingerprint(model: Model, g: nx.Graph, deployment: str) -> Fingerprint:
    """The fingerprint a plan of ``deployment`` on the compiled ``g`` records."""
    return Fingerprint(topology_fingerprint(g), deployment_fingerprint(model, deployment) or "")


def _deployments(model: Model) -> list[str]:
    return [s.name for s in model.specs if s.category == "deployment"]


def _made_for(doc: PlanDocument) -> str:
    src = doc.source
    defines = " ".join(f"-D {k}={v}" for k, v in sorted(src.defines.items()))
    return (f"the plan was made for deployment '{src.deployment}' on topology "
            f"'{src.topology}'" + (f" with {defines}" if defines else ""))


def check_plan_for(doc: PlanDocument, model: Model, g: nx.Graph, origin: PlanOrigin,
                   file: str) -> None:
    """E024, naming the plan's topology and deployment and ``file``'s, unless ``doc`` was
    made for the compiled ``model``/``g`` (file name ``file``).

    The topology must be the same; so must the deployment when ``file`` declares it.  A
    file that declares other deployments but not the plan's is refused; a file that
    declares none (the bare topology a deployment file imports) is checked by its topology
    only."""
    src, names = doc.source, _deployments(model)
    if names and src.deployment not in names:
        raise _mismatch(origin, ("source", "deployment"),
                        f"{_made_for(doc)}; {file} declares "
                        f"{', '.join(repr(n) for n in names) or 'no deployment'} on "
                        f"topology '{model.root_name}'")
    if doc.fingerprint is None:
        _check_by_names(doc, model, g, origin, file)
        return
    topology = topology_fingerprint(g)
    if doc.fingerprint.topology != topology:
        raise _mismatch(origin, ("fingerprint", "topology"),
                        f"{_made_for(doc)} (topology fingerprint "
                        f"{doc.fingerprint.topology[:_SHORT]}); {file} compiles to topology "
                        f"'{model.root_name}' with fingerprint {topology[:_SHORT]} (another "
                        "machine, or other -D values)")
    deployment = deployment_fingerprint(model, src.deployment)
    if deployment is not None and doc.fingerprint.deployment != deployment:
        raise _mismatch(origin, ("fingerprint", "deployment"),
                        f"{_made_for(doc)} (deployment fingerprint "
                        f"{doc.fingerprint.deployment[:_SHORT]}); deployment "
                        f"'{src.deployment}' of {file} has fingerprint {deployment[:_SHORT]} "
                        "(it or its model was changed since, or -D values differ)")


def _check_by_names(doc: PlanDocument, model: Model, g: nx.Graph, origin: PlanOrigin,
                    file: str) -> None:
    """A plan without fingerprint: its topology name and every device path."""
    if doc.source.topology != model.root_name:
        raise _mismatch(origin, ("source", "topology"),
                        f"{_made_for(doc)}; {file} is topology '{model.root_name}'")
    for i, row in enumerate(doc.devices):
        if row.path not in g:
            raise _mismatch(origin, ("devices", i, "path"),
                            f"{_made_for(doc)} (schema {doc.schema_version}, no fingerprint); "
                            f"its device '{row.path}' is not in topology '{model.root_name}' "
                            f"of {file}")


def _mismatch(origin: PlanOrigin, path: tuple[str | int, ...], message: str) -> CmxError:
    return CmxError([plan_error(origin, path, message)])
