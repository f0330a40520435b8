"""SolverStatus messages say what happened and what to try next (docs/contract.rst)."""

from __future__ import annotations

import numpy as np
import pytest

from krylovadv import SolverStatus, gmres

#: Words each message must contain: the diagnosis and at least one remedy.
PROMISES = {
    SolverStatus.CONVERGED: ("converged", "tolerance"),
    SolverStatus.MAX_ITERATIONS: ("maxiter", "preconditioner", "rtol"),
    SolverStatus.BREAKDOWN: ("invariant", "singular", "inconsistent", "least-squares"),
    SolverStatus.STAGNATION: ("stagnation", "float64", "restart", "looser tolerance"),
    SolverStatus.NON_FINITE: ("NaN", "last finite iterate", "operator"),
    SolverStatus.CALLBACK: ("callback",),
}


@pytest.mark.parametrize("status", list(PROMISES))
def test_message_names_the_diagnosis_and_a_remedy(status):
    message = status.message
    for word in PROMISES[status]:
        assert word in message, (status.name, word, message)


def test_messages_are_distinct_and_statuses_are_distinct_codes():
    members = list(SolverStatus)
    assert len({int(s) for s in members}) == len(members) == 8  # 0-6 and NEGATIVE_CURVATURE (cg)
    assert len({s.message for s in members}) == len(members)
    assert SolverStatus.CONVERGED == 0  # the only success; scipy's info == 0 convention


def test_result_message_follows_the_status_per_sample():
    A = np.diag([1.0, 2.0, 3.0])
    b = np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    result = gmres(A, b, rtol=1e-10, maxiter=1, restart=1)
    assert result.message == [SolverStatus(int(s)).message for s in result.status]
    assert result.message[0] == SolverStatus.MAX_ITERATIONS.message
    assert result.message[1] == SolverStatus.CONVERGED.message
    assert result.sample(0).message == SolverStatus.MAX_ITERATIONS.message
