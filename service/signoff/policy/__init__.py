"""Policy files -> an immutable, indexed, compiled Bundle (see load_bundle)."""

from signoff.policy.bundle import (
    Bundle,
    BundleError,
    CompiledPolicy,
    CompiledRule,
    CompiledVariable,
    PolicyError,
)
from signoff.policy.cel import Activation, CelError, CelEvalError, Program
from signoff.policy.index import PolicyIndex
from signoff.policy.load import load_bundle, policy_files

__all__ = [
    "Activation",
    "Bundle",
    "BundleError",
    "CelError",
    "CelEvalError",
    "CompiledPolicy",
    "CompiledRule",
    "CompiledVariable",
    "PolicyError",
    "PolicyIndex",
    "Program",
    "load_bundle",
    "policy_files",
]
