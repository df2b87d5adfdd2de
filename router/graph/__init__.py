"""The routing state machine: which tier answers a task, and why.

    state.py        the task as it enters (TaskInput) and the state that flows through the graph
    context.py      run-time dependencies handed to the nodes (backends, policies, retrieval,
                    the budget gate)
    validation.py   the intake's checks: bad input refused before anything runs
    agent_turn.py   an agent's turn: its structured conversation and tools, checked
    prompt_tokens.py  an agent turn's prompt tokens, each message counted once across turns
    known.py        what the intake learns of a text or a set of tools, kept by its content
    tool_calls.py   the judge of a local answer's tool calls (and calls written as text)
    signals.py      small pure functions of a task's features (confidence, context fit, files,
                    type)
    decide.py       the one place where signals meet thresholds
    nodes.py        thin graph nodes: call a plain function, merge its result
    judge.py        the judge as a plain function: code checks, confidence, repair, route
    judge_model.py  the learned judge (logistic regression over every signal; models/)
    agreement.py    sampling agreement: k local answers compared by what they do
    repair.py       what the local model is told when its answer fails its own checks
    edit_prompt.py  the router's own prompt for an edit in a client's format
    spend.py        cloud spend: reserve, then settle or release (the one place)
    graph.py        the LangGraph factory and run_task
    progress.py     a run with its progress reported (node ends, tokens) and a cancel flag
    answer.py       the answer a run serves (RoutedAnswer), built from the final state
    record.py       the route record returned with every answer
    errors.py       what the router raises (the tree is drawn there)
"""
