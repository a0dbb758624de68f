"""What the page, the HTTP API, the MCP tools and the CLI share, without Gradio: read a user's
input (inputs), run an action on its request object (studio), write the files a musician takes
away (outputs) into the size-capped temp store (tempfiles)."""
