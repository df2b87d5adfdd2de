"""The run layer: one way to run a task, whatever the transport.

    caller.py   who is calling: key, team, the team's policy, the local-only rule and the
                budget gate, resolved once per request
    budget.py   the budget gate: the team's and the key's budgets, reserved atomically in Redis
    runner.py   one graph run in a thread: its events, its cancel and timeout, what it ran
    ahead.py    a direct model stream read in one thread, ahead of its client
    stopping.py the server's stop: streams still running after the grace period end, recorded
    outcome.py  the typed route record and the one function that writes the ledger entry

The wire adapters (router/service/, one module per API) and the task worker
(router/worker.py) translate a request into a task and the outcome back; nothing else.
docs/architecture.md draws it.
"""
