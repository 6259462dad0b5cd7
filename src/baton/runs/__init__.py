"""Server-side agent runs (DESIGN §2): environments, workspaces, the executor, the queue, live
events."""
