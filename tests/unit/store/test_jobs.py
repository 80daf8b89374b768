"""The transcription job queue's guarantees, on the real SQLite store."""

import pytest

from cti_bridge.store import Store
from cti_bridge.tickets.model import TicketNumbering
from tests.support.helpers import inbound_call, new_ticket

T0 = 1_800_000_000.0
RESULT = {
    "text": "hello",
    "words": [{"word": "hello", "start": 0.1, "end": 0.5, "conf": 0.9}],
    "duration_seconds": 1.0,
    "elapsed_seconds": 0.2,
}


@pytest.fixture
async def store(tmp_path):
    store = await Store.open(f"sqlite:///{tmp_path}/t.db", TicketNumbering())
    yield store
    await store.close()


async def queued_job(store, linkedid="1.1"):
    call = inbound_call(linkedid, started_at=T0)
    await store.create_ticket_for_call(new_ticket(), call, None, T0)
    recording = await store.add_recording(call, f"/pbx/{linkedid}.wav", f"/local/{linkedid}.wav", T0)
    assert recording is not None
    assert await store.add_recording(call, f"/pbx/{linkedid}.wav", f"/local/{linkedid}.wav", T0) == recording
    job = await store.link_recording(
        recording,
        status="linked",
        size_bytes=100,
        duration_seconds=1.0,
        error=None,
        language="en",
        at=T0,
    )
    assert job is not None
    return job


async def test_a_claimed_job_is_not_claimed_twice_until_its_lease_runs_out(store):
    await queued_job(store)
    job = await store.claim_job("a", T0, lease_seconds=60)
    assert job is not None and job.attempts == 1 and job.local_path == "/local/1.1.wav"
    assert await store.claim_job("b", T0 + 30, lease_seconds=60) is None
    stolen = await store.claim_job("b", T0 + 61, lease_seconds=60)
    assert stolen is not None and stolen.id == job.id and stolen.attempts == 2


async def test_only_the_lease_holder_completes_and_only_once(store):
    await queued_job(store)
    first = await store.claim_job("a", T0, lease_seconds=60)
    second = await store.claim_job("b", T0 + 61, lease_seconds=60)  # "a" was presumed dead
    assert not await store.complete_job(first, "a", RESULT, T0 + 70)  # late: refused
    assert await store.complete_job(second, "b", RESULT, T0 + 71)
    assert not await store.complete_job(second, "b", RESULT, T0 + 72)
    detail = await store.ticket_detail("T-000001")
    assert len(detail["transcripts"]) == 1 and detail["transcripts"][0]["words"][0]["word"] == "hello"
    assert detail["recordings"][0]["transcription"] == "done"
    assert await store.job_states() == {"done": 1}


async def test_failed_attempt_is_retried_then_fails_for_good(store):
    await queued_job(store)
    job = await store.claim_job("a", T0, lease_seconds=60)
    assert await store.fail_job(job, "a", "worker crashed", retry_at=T0 + 5, at=T0 + 1)
    assert await store.claim_job("a", T0 + 4, lease_seconds=60) is None  # not before retry_at
    job = await store.claim_job("a", T0 + 5, lease_seconds=60)
    assert job.attempts == 2
    assert await store.fail_job(job, "a", "no audio frames", retry_at=None, at=T0 + 6)
    assert await store.claim_job("a", T0 + 100, lease_seconds=60) is None
    detail = await store.ticket_detail("T-000001")
    assert detail["recordings"][0]["transcription_error"] == "no audio frames"
    assert detail["history"][-1]["kind"] == "transcription_failed"


async def test_release_on_stop_requeues_without_counting_an_attempt(store):
    await queued_job(store)
    await queued_job(store, "2.1")
    await store.claim_job("daemon-1", T0, lease_seconds=600)
    assert await store.release_jobs("daemon-1") == 1
    again = await store.claim_job("daemon-2", T0 + 1, lease_seconds=600)
    assert again is not None and again.attempts == 1 and again.recording_id == 1


async def test_recording_of_an_unknown_call_is_not_stored(store):
    call = inbound_call("9.9", started_at=T0)
    assert await store.add_recording(call, "/p.wav", "/l.wav", T0) is None


async def test_jobs_of_a_run_that_is_gone_are_queued_again_at_once(store):
    """Issue #12: after a SIGKILL the next run took the killed run's jobs only when their lease
    (30 minutes) ran out."""
    await queued_job(store)
    await queued_job(store, "2.1")
    await store.claim_job("host/111/killed", T0, lease_seconds=1800)
    await store.claim_job("host/222/alive", T0, lease_seconds=1800)
    assert await store.running_job_owners() == ["host/111/killed", "host/222/alive"]
    assert await store.requeue_jobs_of("host/111/killed") == 1
    again = await store.claim_job("host/333/next", T0 + 1, lease_seconds=1800)
    assert again is not None and again.recording_id == 1 and again.attempts == 2
    assert await store.running_job_owners() == ["host/222/alive", "host/333/next"]
