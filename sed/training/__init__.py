"""Training: mixed batches (`batches`), the objective (`objectives`), the one loop and model selection
(`trainer`), its state on disk (`checkpoint`), process-wide settings (`runtime`, `host_memory`)."""
