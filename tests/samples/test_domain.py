"""The sample state machine as a table, and accession numbers (no database)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from nidaan.samples.domain import (
    TERMINAL,
    IllegalTransition,
    SampleEvent,
    accession_number,
    accession_scope,
    allowed_events,
    ist_day,
    transition,
)
from nidaan.samples.enums import SampleStatus as S

E = SampleEvent

LEGAL = {
    (S.ORDERED, E.COLLECT): S.COLLECTED,
    (S.COLLECTED, E.DISPATCH): S.IN_TRANSIT,
    (S.COLLECTED, E.RECEIVE): S.RECEIVED,
    (S.IN_TRANSIT, E.RECEIVE): S.RECEIVED,
    (S.RECEIVED, E.START_PROCESSING): S.IN_PROCESS,
    (S.IN_PROCESS, E.COMPLETE): S.COMPLETED,
    (S.ORDERED, E.REJECT): S.REJECTED,
    (S.COLLECTED, E.REJECT): S.REJECTED,
    (S.IN_TRANSIT, E.REJECT): S.REJECTED,
    (S.RECEIVED, E.REJECT): S.REJECTED,
    (S.IN_PROCESS, E.REJECT): S.REJECTED,
}


@pytest.mark.parametrize(("state", "event"), [(s, e) for s in S for e in E])
def test_the_whole_table(state: S, event: E) -> None:
    if (state, event) in LEGAL:
        assert transition(state, event) == LEGAL[(state, event)]
    else:
        with pytest.raises(IllegalTransition) as caught:
            transition(state, event)
        error = caught.value
        assert error.status_code == 409
        assert error.code == "illegal_transition"
        assert error.data["from"] == state.value
        assert error.data["event"] == event.value
        assert error.data["to"] in {s.value for s in S}


def test_illegal_transition_names_the_target_state() -> None:
    with pytest.raises(IllegalTransition) as caught:
        transition("completed", "receive")
    assert (caught.value.data["from"], caught.value.data["to"]) == ("completed", "received")
    assert "completed" in caught.value.detail
    assert "received" in caught.value.detail


def test_terminal_states_allow_nothing() -> None:
    assert {S.COMPLETED, S.REJECTED} == TERMINAL
    for state in TERMINAL:
        assert allowed_events(state) == []


@given(st.lists(st.sampled_from(list(E)), max_size=30))
def test_random_event_sequences_stay_in_defined_states(events: list[E]) -> None:
    state = S.ORDERED
    for event in events:
        try:
            new = transition(state, event)
        except IllegalTransition:
            assert (state, event) not in LEGAL
            continue
        assert state not in TERMINAL
        assert new in set(S)
        state = new


class SampleLifecycle(RuleBasedStateMachine):
    """Hypothesis drives random events; the model never leaves the defined states."""

    def __init__(self) -> None:
        super().__init__()
        self.state = S.ORDERED
        self.history: list[S] = [S.ORDERED]

    @rule(event=st.sampled_from(list(E)))
    def apply(self, event: E) -> None:
        before = self.state
        if (before, event) not in LEGAL:
            with pytest.raises(IllegalTransition) as caught:
                transition(before, event)
            assert caught.value.data["from"] == before.value
            return
        self.state = transition(before, event)
        assert before not in TERMINAL
        self.history.append(self.state)

    @invariant()
    def defined_state(self) -> None:
        assert self.state in set(S)

    @invariant()
    def terminal_is_forever(self) -> None:
        for index, state in enumerate(self.history):
            if state in TERMINAL:
                assert self.history[index:] == [state]

    @invariant()
    def received_only_after_collection(self) -> None:
        if S.RECEIVED in self.history:
            assert S.COLLECTED in self.history[: self.history.index(S.RECEIVED)]


TestSampleLifecycle = SampleLifecycle.TestCase


def test_accession_format_uses_the_india_calendar_day() -> None:
    # 20:00 UTC on 14 March is 01:30 on 15 March in India.
    day = ist_day(datetime(2025, 3, 14, 20, 0, tzinfo=UTC))
    assert day == date(2025, 3, 15)
    assert accession_number("CC1", day, 7) == "CC1-20250315-0007"
    assert accession_number("LAB", day, 12345) == "LAB-20250315-12345"
    assert accession_scope("CC1", day) == "accession:CC1:20250315"
