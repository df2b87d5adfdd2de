"""The routing state machine: which tier answers a task, and why.

    state.py    the task as it enters (TaskInput) and the state that flows through the graph
    context.py  run-time dependencies handed to the nodes (backends, policies, retrieval)
    signals.py  small pure functions of a task's features (confidence, context fit, files, type)
    decide.py   the one place where signals meet thresholds
    nodes.py    thin graph nodes: call a plain function, merge its result
    graph.py    the LangGraph factory
    record.py   the route record returned with every answer
"""
