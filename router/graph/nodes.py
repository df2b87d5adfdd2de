"""Graph nodes. Each is thin: read the state, call plain functions, return what changed."""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Callable
from functools import wraps
from typing import Any, Literal

from langgraph.runtime import Runtime

from agents.base import Generation, GenerationRequest, Message, TokenEvent, ToolCall
from agents.cloud import price
from agents.errors import BackendUnavailable, LocalUnavailable
from policies.config import TaskType
from policies.privacy import privacy_rule
from policies.redaction import redact_kept
from retrieval import api
from router.checks.code import extract_code_blocks
from router.checks.edits import client_edit as read_client_edit
from router.checks.edits import without_instructions
from router.graph import agent_turn, agreement, decide, edit_prompt, signals, spend, tool_calls
from router.graph import repair as prompts
from router.graph.context import RouterContext
from router.graph.errors import BudgetExceeded, InvalidTask, PolicyViolation, TaskTooLarge
from router.graph.judge import judge_answer
from router.graph.known import Known, text_digest
from router.graph.prompt_tokens import conversation_tokens
from router.graph.state import FileRef, RouterState
from router.graph.validation import DEFAULT_MAX_TOKENS, validate

Node = Callable[[RouterState, Runtime[RouterContext]], dict[str, Any]]


def timed(name: str) -> Callable[[Node], Node]:
    def wrap(node: Node) -> Node:
        @wraps(node)
        def run(state: RouterState, runtime: Runtime[RouterContext]) -> dict[str, Any]:
            started = time.perf_counter()
            update = node(state, runtime)
            # A node that runs again (the judge after a repair) adds to its time.
            before = state.get("timings_ms", {}).get(name, 0.0)
            update["timings_ms"] = {name: before + (time.perf_counter() - started) * 1000}
            return update
        return run
    return wrap


# --- intake --------------------------------------------------------------------------------

def user_message(prompt: str, files: list[Any]) -> str:
    parts = []
    for item in files:
        parts.append(f"File `{item['path']}`:\n```\n{item['content']}\n```")
    parts.append(prompt)
    return "\n\n".join(parts)


def build_messages(state: RouterState, files: list[Any]) -> list[Message]:
    """The task as the models see it: the system prompt, the chat's earlier turns as they
    were, then the task with its attached files."""
    messages = []
    if state.get("system"):
        messages.append(Message("system", state["system"],
                                cache=bool(state.get("system_cache"))))
    if agent_turn.is_agent_turn(state):  # an agent's turn: its conversation, as it is
        return [*messages, *agent_turn.messages(state["conversation"])]
    messages.extend(Message(turn["role"], turn["content"]) for turn in state.get("history") or [])
    messages.append(Message("user", user_message(state["prompt"], files)))
    return messages


def task_text(state: RouterState) -> str:
    """The task's own text: its prompt without the instructions the client repeats there from
    its system prompt (Aider's format reminder, with its example paths)."""
    return without_instructions(state["prompt"], state.get("system") or "")


def collect_files(state: RouterState, ctx: RouterContext) -> list[FileRef]:
    """The files the task touches: those attached, those its own text names, those an earlier
    user turn sent (a path, then its content), and, with an indexed repo, the files that
    define or call a symbol it names. Paths in system prompts, in examples and in code blocks
    do not count: a client's instructions are not the task."""
    refs: dict[str, FileRef] = {}
    for item in state.get("files") or []:
        refs.setdefault(item["path"], {"path": item["path"], "source": "attached"})
    task = signals.without_inlined_replies(task_text(state))
    for path in named_files(task):
        refs.setdefault(path, {"path": path, "source": "prompt"})
    for turn in state.get("history") or []:
        if turn["role"] == "user":
            for path in signals.files_sent(turn["content"]):
                refs.setdefault(path, {"path": path, "source": "history"})
    for path in agent_turn.tool_paths(state.get("conversation") or []):
        refs.setdefault(path, {"path": path, "source": "tool"})
    repo = state.get("repo")
    if repo and ctx.retrieval is not None:
        for symbol in signals.symbols_in_prompt(task):
            found = ctx.retrieval.references(repo, symbol)
            for path in [*found.defined_in, *found.used_in]:
                refs.setdefault(path, {"path": path, "source": "references"})
    return list(refs.values())


# The task type and the files a task's text names, kept by its content: an agent's turns
# repeat their instruction while a tool exchange goes on, and the rules' regular expressions
# take about 1 ms over a 3,000-character instruction.
TEXT_SIGNALS = Known()


def task_type_of(text: str) -> TaskType:
    """:func:`signals.classify_task`, once per distinct text."""
    found: TaskType = TEXT_SIGNALS.get(("type", text_digest(text)),
                                  lambda: signals.classify_task(text))
    return found


def named_files(text: str) -> tuple[str, ...]:
    """The paths ``text`` names and the files it sends (:func:`signals.paths_in_prompt`,
    :func:`signals.files_sent`), in order, once per distinct text."""
    found: tuple[str, ...] = TEXT_SIGNALS.get(
        ("files", text_digest(text)),
        lambda: (*signals.paths_in_prompt(text), *signals.files_sent(text)))
    return found


def changed_files(refs: list[FileRef]) -> list[FileRef]:
    """The files the task itself brings (attached, named, sent): not the index's references,
    nor the files an agent's tools read (context, not files the turn changes)."""
    return [ref for ref in refs if ref["source"] not in ("references", "tool")]


def count_prompt(ctx: RouterContext, messages: list[Message],
                 tools: list[dict[str, Any]] | None = None, *, by_message: bool = False,
                 tools_key: bytes | None = None) -> int:
    """The prompt's tokens as the local model sees them, the tools' schemas included.
    ``by_message``: an agent's turn, its messages counted once each across turns
    (:mod:`router.graph.prompt_tokens`: the same count or a few tokens more).
    ``tools_key``: the tools' :func:`agent_turn.key`, where the caller has it."""
    offered = (agent_turn.tools_tokens(ctx.count_tokens, tools, tools_key=tools_key)
               if tools else 0)
    if by_message:
        return conversation_tokens(ctx.local, ctx.count_tokens, messages) + offered
    counted = ctx.local.count_prompt_tokens(GenerationRequest(messages=tuple(messages)))
    if counted is None:
        counted = sum(ctx.count_tokens(m.content + "".join(c.arguments for c in m.tool_calls))
                      + 4 for m in messages)
    return counted + offered


def with_recovered_calls(state: RouterState, generation: Generation | None) -> Generation | None:
    """A local answer that wrote its tool call as text (:func:`tool_calls.recovered`), as
    the call it is: the client runs calls, not JSON in prose."""
    if generation is None or generation.tool_calls or not state.get("tools"):
        return generation
    calls = tool_calls.recovered(generation.text, state["tools"])
    if not calls:
        return generation
    return dataclasses.replace(generation, text="", finish_reason="tool_calls",
                               tool_calls=tuple(ToolCall(*call) for call in calls),
                               extra={**generation.extra, "tool_calls_from_text": True})


def uses_tools(state: RouterState) -> bool:
    """An agent's turn that offers tools or carries tool calls or results: only a local tier
    that can call tools renders it."""
    return bool(state.get("tools")) or any(
        turn.get("tool_calls") or turn.get("role") == "tool"
        for turn in state.get("conversation") or [])


def tool_request(state: RouterState) -> dict[str, Any]:
    """The tools of an agent's turn, as a :class:`GenerationRequest` takes them."""
    if not state.get("tools"):
        return {}
    return {"tools": tuple(state["tools"]), "tool_choice": state.get("tool_choice"),
            "parallel_tool_calls": state.get("parallel_tool_calls")}


@timed("intake")
def intake(state: RouterState, runtime: Runtime[RouterContext]) -> dict[str, Any]:
    ctx = runtime.context
    validate(state, ctx)
    agent = agent_turn.is_agent_turn(state)
    # the tools' content, encoded once: what is known of them is kept by it (agent_turn.key)
    tools_key = agent_turn.key(state.get("tools") or []) if agent else None
    if agent:
        agent_turn.validate(state, tools_key=tools_key)
    messages = build_messages(state, state.get("files") or [])
    task_type = state.get("type") or task_type_of(task_text(state))
    files = collect_files(state, ctx)
    prompt_tokens = count_prompt(ctx, messages, state.get("tools"), by_message=agent,
                                 tools_key=tools_key)
    return {
        "messages": messages,
        "task_type": task_type,
        "task_type_source": "request" if state.get("type") else "classifier",
        "file_refs": files,
        "prompt_tokens": prompt_tokens,
        "max_tokens": state.get("max_tokens", DEFAULT_MAX_TOKENS),
        "signals": {"task_type": task_type, "prompt_tokens": prompt_tokens,
                    "files": len(changed_files(files)),
                    "reference_files": len(files) - len(changed_files(files))},
    }


# --- policy --------------------------------------------------------------------------------

@timed("policy")
def policy(state: RouterState, runtime: Runtime[RouterContext]) -> dict[str, Any]:
    ctx = runtime.context
    team = state.get("team")
    rules = ctx.policy if ctx.policy is not None else ctx.policies.for_team(team)
    route = state.get("route", "auto")
    forced = route if route != "auto" else None
    privacy = privacy_rule(rules, team=team, repo=state.get("repo"),
                           paths=[f["path"] for f in state["file_refs"]])
    if forced and not rules.allow_forced_routes:
        raise PolicyViolation("route", f"team {team!r} may not force a route; use auto")
    if forced == "cloud" and privacy:
        raise PolicyViolation("route", f"cannot send this task to the cloud: {privacy}")
    max_tokens = state["max_tokens"]
    # An agent's max_tokens is a ceiling (Claude Code asks for up to 64,000), not the answer's
    # length: its turn fits the local window with room for agent_answer_tokens of answer.
    answer = (min(max_tokens, rules.agent_answer_tokens) if agent_turn.is_agent_turn(state)
              else max_tokens)
    fit = local_fit(ctx, rules.context_margin_tokens, state["prompt_tokens"], answer)
    # Files found through the index's references are context, not files the task changes:
    # they are listed in the record but do not count toward max_local_files.
    tools_local = uses_tools(state) and not ctx.local.supports_tools
    if tools_local and (forced == "local" or privacy):
        why = "the request asked for local" if forced == "local" else privacy
        raise PolicyViolation("tools", f"the local model ({ctx.local.model_name}) cannot take "
                              f"tool calls, and this turn may not go to the cloud ({why}): run "
                              "the local tier on llama-server with jinja on (local.mode)")
    verdict = decide.before_generation(policy=rules, forced=forced, privacy=privacy,
                                       task_type=state["task_type"],
                                       files=changed_files(state["file_refs"]), fit=fit,
                                       tools_unsupported=tools_local,
                                       pinned=state.get("pinned"))
    cloud_window = ctx.cloud.n_ctx
    if (verdict and verdict["route"] == "cloud" and cloud_window is not None
            and not decide.fits_cloud(state["prompt_tokens"], cloud_window)):
        raise TaskTooLarge(state["prompt_tokens"], max_tokens=max_tokens,
                           local_window=ctx.local_window, cloud_window=cloud_window,
                           forced=forced == "cloud")
    update: dict[str, Any] = {
        "policy": rules, "privacy": privacy, "decision": verdict, "auto_decision": verdict,
        "fit": fit,
        "signals": {"context": {"needed": fit.needed, "available": fit.available,
                                "fits": fit.fits},
                    "privacy": privacy},
    }
    if privacy and not fit.fits:
        update.update(trim_for_local(state, ctx, rules.context_margin_tokens, max_tokens))
    return update


def trim_for_local(state: RouterState, ctx: RouterContext, margin: int,
                   max_tokens: int) -> dict[str, Any]:
    """Privacy forbids the cloud, so make the task fit locally: drop the oldest attached
    files first, then shorten the answer budget; say what was dropped."""
    files = list(state.get("files") or [])
    notes = []
    while True:
        messages = build_messages(state, files)
        prompt_tokens = count_prompt(ctx, messages, state.get("tools"),
                                     by_message=agent_turn.is_agent_turn(state))
        room = ctx.local_window - margin - prompt_tokens
        if room >= max_tokens or not files:
            break
        notes.append(f"dropped attached file {files.pop(0)['path']} to fit the local window")
    if room < 32:
        raise InvalidTask("prompt", "is too long for the local window and this task may not "
                          "go to the cloud (privacy policy): shorten it")
    if room < max_tokens:
        notes.append(f"cut max_tokens from {max_tokens} to {room} to fit the local window")
        max_tokens = room
    return {"messages": messages, "prompt_tokens": prompt_tokens, "max_tokens": max_tokens,
            "fit": local_fit(ctx, margin, prompt_tokens, max_tokens),
            "context_notes": notes}


def local_limit(state: RouterState, extra_prompt: int = 0) -> int:
    """The most tokens a local answer may have: the task's max_tokens, or what the local window
    has left after the prompt (and ``extra_prompt``, a repair turn's), whichever is less; a cut
    answer stops with finish_reason ``length``, and the judge escalates it."""
    fit = state["fit"]
    room = fit.available - fit.prompt_tokens - fit.snippet_tokens - extra_prompt
    return min(state["max_tokens"], room) if room > 0 else state["max_tokens"]


def local_fit(ctx: RouterContext, margin: int, prompt_tokens: int,
              max_tokens: int) -> signals.ContextFit:
    """The task against the local window (snippets are added by ``retrieve``)."""
    return signals.ContextFit(prompt_tokens, 0, max_tokens, ctx.local_window, margin)


def after_policy(state: RouterState) -> Literal["cloud_generate", "retrieve"]:
    return decide.step_after_policy(state.get("decision"), shadow=state["policy"].shadow_route)


# --- retrieve ------------------------------------------------------------------------------

@timed("retrieve")
def retrieve(state: RouterState, runtime: Runtime[RouterContext]) -> dict[str, Any]:
    ctx = runtime.context
    repo = state.get("repo")
    if not repo or ctx.retrieval is None:
        return {"snippets": "", "snippet_tokens": 0, "snippets_used": []}
    fit = state["fit"]
    budget = max(0, min(ctx.snippet_token_budget, fit.available - fit.needed))
    if not budget:
        return {"snippets": "", "snippet_tokens": 0, "snippets_used": []}
    # Attached files as the policy left them (files trimmed for privacy do not count).
    files = state.get("files") or []
    # Snippets in the task's language (its attached files' suffixes, the language it names):
    # a Python task gets no JavaScript; any language where the task does not say.
    languages = api.task_languages(state["prompt"], files)
    # Twice as many candidates as snippets, so that choosing by value has a choice.
    hits = ctx.retrieval.search(repo, state["prompt"], 2 * ctx.snippet_k, languages=languages)
    found = {"search_hits": len(hits), "snippet_languages": list(languages or [])}
    chosen = api.build(hits, budget, ctx.count_tokens, modules=ctx.retrieval.modules(repo),
                       prompt=state["prompt"], task_type=state.get("task_type"), files=files,
                       k=ctx.snippet_k, min_score=ctx.snippet_min_score)
    if not chosen.text:
        return {"snippets": "", "snippet_tokens": 0, "snippets_used": [], "signals": found}
    # The data block, then what to do with it (outside the block), then the task.
    lead = f"{chosen.text}\n\n{chosen.preamble}"
    tokens = ctx.count_tokens(lead)
    *earlier, task = state["messages"]
    return {"snippets": chosen.text, "snippet_tokens": tokens,
            "snippets_used": [s.as_dict() for s in chosen.used],
            "fit": dataclasses.replace(fit, snippet_tokens=tokens),
            "signals": found,
            # Snippets lead the task's own message, as the policy left it (files may be trimmed).
            "messages": [*earlier, Message(task.role, f"{lead}\n\n{task.content}")]}


# --- local_generate ------------------------------------------------------------------------

@timed("local_generate")
def local_generate(state: RouterState, runtime: Runtime[RouterContext]) -> dict[str, Any]:
    ctx = runtime.context
    rules = state["policy"]
    max_tokens = local_limit(state)
    own = local_edit_messages(state)
    request = GenerationRequest(messages=tuple(own or state["messages"]), max_tokens=max_tokens,
                                **tool_request(state))
    # Abort only when escalating is possible and still undecided.
    can_abort = state.get("decision") is None and not state.get("privacy")
    recent: deque[float] = deque(maxlen=rules.early_abort_window)
    events = ctx.local.stream(request)
    generated, final, aborted = 0, None, None
    try:
        for item in events:
            if isinstance(item, Generation):
                final = item
            elif isinstance(item, TokenEvent) and item.logprob is not None:
                generated += 1
                recent.append(item.logprob.logprob)
                if can_abort and len(recent) == recent.maxlen:
                    mean = signals.window_mean(recent)
                    if decide.should_abort(mean, generated, rules):
                        aborted = {"after_tokens": generated, "window_confidence": mean,
                                   "saved_tokens": max_tokens - generated}
                        break
    except BackendUnavailable as exc:
        return local_unavailable(state, exc)
    finally:
        getattr(events, "close", lambda: None)()
    return {"local": with_recovered_calls(state, final), "aborted": aborted,
            "signals": {"local_prompt": "client" if own is None else "router_edit_format"}}


def client_edit(state: RouterState) -> Any:
    """The edit the client asked for in its own format (:func:`router.checks.edits.client_edit`),
    or None."""
    return read_client_edit(state["prompt"], system=state.get("system") or "",
                history=state.get("history") or [], files=state.get("files") or [])


def local_edit_messages(state: RouterState, problem: str | None = None) -> list[Message] | None:
    """The router's own prompt for the client's edit format (:mod:`router.graph.edit_prompt`)
    where the policy asks for it and the router has one; None: the client's messages."""
    if (state["policy"].local_edit_prompt != "router" or state.get("task_type") == "review"
            or agent_turn.is_agent_turn(state)):
        return None
    edit = client_edit(state)
    return None if edit is None else edit_prompt.messages(edit, problem=problem)


def local_unavailable(state: RouterState, exc: BackendUnavailable) -> dict[str, Any]:
    """The local tier did not answer (its server gone or failing): the cloud where
    :func:`decide.local_unavailable` allows, else a clear 503 at once."""
    verdict = decide.local_unavailable(policy=state["policy"], privacy=state.get("privacy"),
                                       requested_route=state.get("route"))
    if verdict is None:
        kept = decide.kept_local(policy=state["policy"], privacy=state.get("privacy"),
                                 requested_route=state.get("route"))
        raise LocalUnavailable(f"the local tier is unavailable ({exc}) and the task may not go "
                               f"to the cloud ({kept}): try again shortly") from exc
    return {"local": None, "aborted": None,
            "decision": {**verdict, "detail": f"{verdict['detail']} ({exc})"}}


def after_local(state: RouterState) -> Literal["judge", "cloud_generate"]:
    return decide.step_after_local(state.get("decision"))


# --- judge ---------------------------------------------------------------------------------

@timed("judge")
def judge(state: RouterState, runtime: Runtime[RouterContext]) -> dict[str, Any]:
    ctx = runtime.context
    local = state.get("local")
    answer_tokens = local.usage.completion_tokens if local is not None else 0
    # A repair turn adds the answer and a feedback message (~256 tokens) to the prompt.
    fit = state["fit"]
    repair_fit = dataclasses.replace(fit, prompt_tokens=fit.prompt_tokens + answer_tokens + 256)
    repo = state.get("repo")
    modules = ctx.retrieval.symbol_table(repo) if repo and ctx.retrieval is not None else None
    return judge_answer(state, ctx.sandbox, repair_fits=repair_fit.fits, modules=modules)


def after_judge(state: RouterState) -> Literal["repair", "sample", "cloud_generate", "record"]:
    return decide.step_after_judge(repair=bool(state.get("repair")),
                                   sample=bool(state.get("sample")),
                                   privacy=state.get("privacy"),
                                   shadow=state["policy"].shadow_route,
                                   decision=state.get("decision"))


# --- sample --------------------------------------------------------------------------------

@timed("sample")
def sample(state: RouterState, runtime: Runtime[RouterContext]) -> dict[str, Any]:
    """Sampling agreement: k-1 more local answers at the policy's temperature, all k run on
    the same probe inputs in the sandbox and clustered by behaviour; the answer served is the
    majority's (the greedy one when it is in it). The judge then judges it (no majority
    escalates)."""
    ctx = runtime.context
    rules = state["policy"]
    local = state["local"]
    assert local is not None and ctx.sandbox is not None, "the judge samples only then"
    request = GenerationRequest(messages=tuple(state["messages"]), max_tokens=local_limit(state),
                                temperature=rules.sample_temperature)
    started = time.perf_counter()
    answers = [local]
    try:
        answers.extend(ctx.local.generate(request) for _ in range(rules.sample_k - 1))
    except BackendUnavailable as exc:
        # The local tier went away between the answers: no agreement to find. The judge
        # decides on the first answer as if sampling had not run (it does not run again).
        return {"decision": None, "auto_decision": None, "agreement": {
            "k": rules.sample_k, "majority": None, "local_unavailable": str(exc),
            "generate_ms": round((time.perf_counter() - started) * 1000, 1),
            "completion_tokens": sum(a.usage.completion_tokens for a in answers[1:])}}
    generated_ms = (time.perf_counter() - started) * 1000
    target = agreement.target_function(state["prompt"])
    assert target is not None
    codes = ["\n\n".join(b.code for b in extract_code_blocks(a.text) if b.language == "python")
             or None for a in answers]
    calls = agreement.probe_calls(*target)
    found = agreement.agree(agreement.behaviours(codes, calls, ctx.sandbox,
                                                 timeout_s=rules.execution_timeout_s),
                            len(calls))
    return {"local": answers[found.chosen], "decision": None, "auto_decision": None,
            "agreement": {**found.as_dict(), "generate_ms": round(generated_ms, 1),
                          "completion_tokens": sum(a.usage.completion_tokens
                                                   for a in answers[1:])}}


# --- repair --------------------------------------------------------------------------------

@timed("repair")
def repair(state: RouterState, runtime: Runtime[RouterContext]) -> dict[str, Any]:
    """One more local turn: the failing answer and what failed, back to the local model. The
    judge then judges the new answer as if it were the first (the route is decided again,
    unless the request forced it local)."""
    ctx = runtime.context
    local, checks = state["local"], state["checks"]
    assert local is not None, "the judge repairs only an answer it has"
    # A broken edit format: the one file the model may write, its content and what was wrong,
    # in the router's own prompt for the client's format (where it has one for that format).
    trigger = prompts.trigger(checks)
    own = (local_edit_messages(state, prompts.format_problems(checks))
           if trigger == "edit_format" else None)
    if trigger == "tool_call":
        own = prompts.tool_call_messages(state["messages"], local, checks["tool_calls"])
    imports = prompts.snippet_imports(state.get("snippets_used") or [])
    request = GenerationRequest(
        messages=tuple(own or prompts.messages(state["messages"], local.text, checks,
                                               imports=imports)),
        # the repair turn's prompt holds the answer and the feedback too (~256 tokens)
        max_tokens=local_limit(state, local.usage.completion_tokens + 256),
        **tool_request(state))
    started = time.perf_counter()
    kept = state.get("decision") if decide.stays_local(state.get("decision")) else None
    attempt: dict[str, Any] = {"round": len(state.get("local_attempts") or []) + 1, "trigger": trigger}
    try:
        generation = with_recovered_calls(state, ctx.local.generate(request))
    except BackendUnavailable as exc:
        # The local tier went away mid-repair: the judge decides on the answer it has, with
        # no more rounds (an unchanged round ends the repair), as if the rounds were spent.
        attempt |= {"prompt_tokens": 0, "completion_tokens": 0, "unchanged": True,
                    "ms": round((time.perf_counter() - started) * 1000, 1),
                    "local_unavailable": str(exc)}
        return {"decision": kept, "auto_decision": kept, "local_attempts": [attempt]}
    assert generation is not None
    attempt |= {
        "prompt_tokens": generation.usage.prompt_tokens,
        "completion_tokens": generation.usage.completion_tokens,
        "ms": round((time.perf_counter() - started) * 1000, 1),
        "unchanged": generation.text.strip() == local.text.strip(),
    }
    return {"local": generation, "decision": kept, "auto_decision": kept,
            "local_attempts": [attempt]}


# --- cloud_generate ------------------------------------------------------------------------

@timed("cloud_generate")
def cloud_generate(state: RouterState, runtime: Runtime[RouterContext]) -> dict[str, Any]:
    ctx = runtime.context
    if state.get("privacy"):  # fail closed, whatever led here
        raise PolicyViolation("route", f"cannot send this task to the cloud: {state['privacy']}")
    messages: list[Message] = []
    count, kinds = 0, list[str]()
    for message in state["messages"]:
        texts = [message.content, *(call.arguments for call in message.tool_calls)]
        if state["policy"].redact_secrets:  # tool results and tool arguments too
            found = [redact_kept(text) for text in texts]  # each text scanned once
            texts = [r.text for r in found]
            count += sum(r.count for r in found)
            kinds.extend(kind for r in found for kind in r.kinds)
        calls = tuple(dataclasses.replace(call, arguments=text)
                      for call, text in zip(message.tool_calls, texts[1:], strict=True))
        messages.append(dataclasses.replace(message, content=texts[0], tool_calls=calls))
    request = GenerationRequest(messages=tuple(messages), max_tokens=state["max_tokens"],
                                **tool_request(state))
    redactions = {"count": count, "kinds": sorted(set(kinds))}
    prompt_tokens = state["prompt_tokens"]
    try:
        generation = spend.metered(
            ctx.cloud_gate, lambda: ctx.cloud.generate(request),
            priced=lambda completion: price(ctx.price_as, prompt_tokens, completion),
            max_tokens=state["max_tokens"])
    except BudgetExceeded:
        verdict = decide.over_budget(policy=state["policy"], has_local=state.get("local") is not None)
        if verdict is None:
            raise
        return {"decision": verdict}
    except BackendUnavailable as exc:
        return cloud_unavailable(state, exc)
    return {"cloud": generation, "redactions": redactions}


def cloud_unavailable(state: RouterState, exc: BackendUnavailable) -> dict[str, Any]:
    """The cloud did not answer: the local answer where the policy allows, else its error."""
    verdict = decide.cloud_unavailable(policy=state["policy"],
                                       has_local=state.get("local") is not None)
    if verdict is None:
        raise exc
    return {"decision": {**verdict, "detail": f"{verdict['detail']} ({exc})"}}
