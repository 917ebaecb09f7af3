"""The lookup behind the decision, in process: what it fetches, and when."""

from __future__ import annotations


def test_builds_deciding_at_once_fetch_each_digest_record_once(tree, monkeypatch):
    """Threads of one run (doit -n N -P thread) that decide together share one
    lookup: the others wait for it instead of fetching the same records."""
    import threading
    from tasks.core import decision
    run, _ = tree.run()
    run.lookup.pull()
    threads = 6
    entered, fetched = [], []
    pure, fetch = decision.decide, run.registry.by_digest
    everyone_deciding = threading.Event()

    def counting_decide(*args):
        entered.append(1)
        if len(entered) >= threads:
            everyone_deciding.set()
        return pure(*args)

    def counting_fetch(wanted):
        everyone_deciding.wait(10)       # without the shared lookup, all would be here now
        fetched.extend(wanted)
        return fetch(wanted)

    monkeypatch.setattr(decision, "decide", counting_decide)
    monkeypatch.setattr(run.registry, "by_digest", counting_fetch)
    workers = [threading.Thread(target=run.lookup.decision) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert fetched and len(fetched) == len(set(fetched)), fetched
