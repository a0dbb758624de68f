"""The web face: the Gradio page (page, one module per tab, panels, forms, widgets), the HTTP API
and MCP tools (api), and the adapters over Gradio's internals (queue_adapter, api_sessions,
mcp_adapter). The only layer that imports gradio."""
