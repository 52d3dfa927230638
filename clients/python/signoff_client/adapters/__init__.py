"""Agent framework adapters: put Signoff in front of a framework's tools.

Each adapter is its own module and needs its own extra, so that the base client stays
light (importing `signoff_client` never imports a framework):

- `signoff_client.adapters.langgraph` (`pip install 'signoff-client[langgraph]'`):
  `signoff_tool(tool, client=..., ...)` wraps a LangChain tool or a plain function; a
  review becomes a LangGraph `interrupt()` where the graph has a checkpointer, and a
  blocking wait otherwise.
- `signoff_client.adapters.openai_agents` (`pip install 'signoff-client[openai-agents]'`):
  `guard_tool(function_tool, client=..., ...)` wraps an OpenAI Agents SDK `FunctionTool`.
"""
