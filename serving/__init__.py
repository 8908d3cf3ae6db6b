"""The model store, its signatures, and the KServe model server that reads it."""
