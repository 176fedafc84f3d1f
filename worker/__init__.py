"""paintbot workers: run the models on queued jobs and reply in the chat."""
