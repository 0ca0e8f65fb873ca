"""The MCP server: Emily's memory and cognition as tools for other agents."""
