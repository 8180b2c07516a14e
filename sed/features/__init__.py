"""Features: the baseline log-mel (`logmel`), its shared memory-mapped cache (`store`) and the per-band scaler (`scaler`)."""
