"""Server-side agent runs: environments, workspaces, the queue, live events."""
