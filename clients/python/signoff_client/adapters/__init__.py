"""Agent framework adapters: put Signoff in front of a framework's tools.

Each adapter is its own module and needs its own extra, so that the base client stays
light (importing `signoff_client` never imports a framework):

- `signoff_client.adapters.langgraph` (the `langgraph` extra, from a checkout
  `pip install './clients/python[langgraph]'`): `signoff_tool(tool, client=..., ...)`
  wraps a LangChain tool or a plain function; a review becomes a LangGraph `interrupt()`
  where the graph has a checkpointer, and a blocking wait otherwise.
- `signoff_client.adapters.openai_agents` (the `openai-agents` extra):
  `guard_tool(function_tool, client=..., ...)` wraps an OpenAI Agents SDK `FunctionTool`.

Importing an adapter without its extra fails with the command that installs it
(`signoff_client._extras.install_hint`).
"""
