"""The bus contract and the domain: pure data and logic, no I/O (msgspec and stdlib only)."""
