"""The service's state in Redis: key names, the embedded server, API keys, budgets, the
ledger. Nothing here imports the routing graph; the graph never imports this package."""
