"""Worker message signatures match the ones the official Avtomatika worker makes."""

from __future__ import annotations

import json

from chronik.core.signing import canonical_bytes, sign, verify

# Captured from avtomatika-worker 1.0b20 (rxon 1.0b17) with WORKER_TOKEN=s3cret.
RESULT = (
    '{"costs":{"execution_time_seconds":0.0059},"data":{"sum":3},"job_id":"job-42","origin_worker_id":"demo-1",'
    '"security":{"signature":"1f873e1c3d6741e3c5176654fbd96012fe7b0f82a487ee03627d437f87d888a0",'
    '"signer_id":"demo-1"},"task_id":"task-42-a","timestamp":1795398182,"worker_id":"demo-1"}'
)
EVENT = (
    '{"bubbling_chain":[],"event_id":"cbada28d-f3b1-485a-ac97-bc30ae47f90c","event_type":"progress",'
    '"origin_task_id":"task-42-a","origin_worker_id":"demo-1","payload":{"message":"adding","progress":0.5},'
    '"priority":0,"security":{"signature":"482557ce0127fb2de177c942c0a9e8186c4fa018c2a13006b7ccc109a2e2e933",'
    '"signer_id":"demo-1"},"target_job_id":"job-42","target_task_id":"task-42-a","timestamp":1795398182,'
    '"trace_context":{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},'
    '"worker_id":"demo-1"}'
)


def test_captured_result_signature_verifies() -> None:
    body = json.loads(RESULT)
    assert canonical_bytes(body) == (
        b'{"costs":{"execution_time_seconds":0.0059},"data":{"sum":3},"job_id":"job-42",'
        b'"origin_worker_id":"demo-1","task_id":"task-42-a","timestamp":1795398182,"worker_id":"demo-1"}'
    )
    assert verify(body, "s3cret")
    assert not verify(body, "wrong")
    tampered = {**body, "data": {"sum": 4}}
    assert not verify(tampered, "s3cret")


def test_captured_event_signature_verifies_without_bubbling_chain() -> None:
    body = json.loads(EVENT)
    assert verify(body, "s3cret", ignore_fields=("bubbling_chain",))


def test_canonical_form_rules() -> None:
    message = {"b": 2.0, "a": {"y": None, "x": [None, 1e-05, 1e-07, 2.5]}, "security": {"signature": "s"}}
    assert canonical_bytes(message) == b'{"a":{"x":[null,0.00001,1e-7,2.5]},"b":2}'
    signed = {**message, "security": {"signature": sign(message, "k")}}
    assert verify(signed, "k")
    assert not verify({"a": 1}, "k")
