"""rotor-lite's MCP servers, built on the official `mcp` SDK: the workspace tools (`rotor-lite mcp`,
stdio), the workflow tools (`/mcp` on `rotor-lite serve`, Streamable HTTP) and the operator tools
(`rotor-lite mcp --admin`). Every tool works through the HTTP API."""
