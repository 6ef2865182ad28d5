"""The LLM side of evolution: the chat client, model ensembles, prompts, call accounting, a scripted server."""
