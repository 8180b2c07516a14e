"""The network: the DCASE 2020 CRNN with its injection points (`model`) and the dropout masks tied across passes (`dropout`)."""
