"""The last test of the session (this file sorts last): tokens that other tests ended
without Synapse being told (see `Stack.expect_refused` in conftest.py) must be
refused by Synapse once its cached introspection answer runs out. The tokens of both
generations are waited for at once, so the 2-minute cache costs one wait per run,
not one per test or per generation. The times are printed in the run's summary.
"""

from __future__ import annotations

import time

from harness import describe, whoami

# Synapse caches introspection answers for 2 minutes; a little slack on top.
CACHE_LIMIT = 130.0


def test_synapse_refuses_ended_tokens_once_its_cache_runs_out(stack, stacks, request):
    items = request.session.items
    if any(item.originalname == request.node.originalname for item in items[items.index(request.node) + 1 :]):
        return  # this test runs again for the next generation, which waits for both
    pending = [(s, ended) for s in stacks.values() for ended in s.ended]
    for s in stacks.values():
        s.ended = []
    late = []
    while pending:
        for s, ended in list(pending):
            response = whoami(s, ended.token)
            now = time.monotonic()
            if response.status_code == 401:
                pending.remove((s, ended))
                s.report(
                    f"{ended.what}: refused by Synapse {now - ended.ended_at:.0f} s after it ended,"
                    f" {now - ended.cached_at:.0f} s after Synapse first saw it ({response.json().get('errcode')})"
                )
            elif response.status_code != 200:
                raise AssertionError(f"[{s.kind}] {ended.what}: {describe(response)}")
            elif now - ended.ended_at > CACHE_LIMIT:
                pending.remove((s, ended))
                late.append(f"[{s.kind}] {ended.what}: still accepted {now - ended.ended_at:.0f} s after it ended")
        if pending:
            time.sleep(1)
    assert not late, late
