"""raikit.federated: federated retraining of a classifier with Flower, against centralized training.

>>> from raikit.audits import load_model                                        # doctest: +SKIP
>>> from raikit.audits.sections import RunContext
>>> from raikit.federated import FederatedOptions, run_federated
>>> clf = load_model("builtin:minilm-sentiment")                                # doctest: +SKIP
>>> result = run_federated(clf, FederatedOptions(clients=3, rounds=2), RunContext())  # doctest: +SKIP
>>> result.metrics["accuracy"].value, result.metrics["centralized_accuracy"].value     # doctest: +SKIP

The SuperLink and SuperNode of a deployment (``check_serve``, ``superlink_session``; ``check_join``,
``write_partition``, ``run_supernode``, ...) are what ``raikit federated serve`` and ``join``
(:mod:`raikit.audits.federated_cli`) compose with the runner.
"""
from raikit.audits.sections import section_registry
from raikit.federated._nodes import (
    SUPERLINK_GONE_AFTER, SuperLinkPlan, SuperNodePlan, advertised, check_join, check_serve, run_supernode,
    serve_preflight, superlink_session, supernode_workspace, write_partition,
)
from raikit.federated._partition import PARTITION_SCHEMES, partition_indices, partition_table
from raikit.federated._section import (
    RUNTIMES, SECTION, STRATEGIES, FederatedOptions, build_clients, check, run_federated,
)

#: The ``[federated]`` table's one section, as the runner reads it (``raikit.audits.sections.SECTION_MODULES``).
SECTIONS = section_registry("federated section", SECTION)

__all__ = ["SECTIONS", "FederatedOptions", "SECTION", "run_federated", "check", "build_clients", "partition_indices",
           "partition_table", "PARTITION_SCHEMES", "STRATEGIES", "RUNTIMES",
           # the deployment's SuperLink and SuperNodes, for raikit federated serve / join
           "SuperLinkPlan", "SuperNodePlan", "advertised", "check_serve", "serve_preflight", "superlink_session",
           "check_join", "supernode_workspace", "write_partition", "run_supernode", "SUPERLINK_GONE_AFTER"]
